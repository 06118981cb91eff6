"""The worker's side of jobs: run each through its executor, stream its logs, report the end.

A job's task never dies silently: whatever goes wrong (a request the executor's options
refuse, an executor that raises something unexpected, a failure while it runs) is reported
to the miner as a ``JobRefused`` with a reason, so the miner records it and frees the worker.

A job's whole log is spilled to a file under the worker's home and sent to the miner from
there (``worker.job_logs``), capped per job and across jobs; the job's end is told as soon as
the program ends, whatever it printed, with a result whose tails are as small as a status
carries them. A cancel stops the program through the executor, which reports it as cancelled.

Inputs given by URL are fetched into the worker's cache (``worker.input_cache``) before the
executor starts, and held there until it has copied them into the work dir; a cancel that
comes during the fetch stops the job once it is up, like any cancel while starting.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from byteleap.config import JobLogSettings, WorkerInputSettings
from byteleap.net.job_times import JobTimes, sign_job_times
from byteleap.net.log_spill import LogSpill, SpillBudget, clear_directory
from byteleap.net.messages import (
    MAX_STATUS_TAIL_BYTES,
    JobEnded,
    JobRefused,
    JobRequest,
    clip_result,
)
from byteleap.protocol.checkpoints import CHECKPOINT_POLL_S
from byteleap.protocol.execution import ExecutionResult
from byteleap.worker.artifact_upload import send_artifacts
from byteleap.worker.checkpoint_upload import CheckpointWatcher, restored_checkpoint
from byteleap.worker.executors import (
    ContainerExecutor,
    ContainerOptions,
    Execution,
    Executor,
    ExecutorError,
    KubernetesExecutor,
    ProcessExecutor,
    executor_for,
)
from byteleap.worker.executors.errors import CorruptInputError
from byteleap.worker.identity import WorkerKey
from byteleap.worker.input_cache import InputCache
from byteleap.worker.job_executors import ExecutorSetting, job_executor, kubernetes_options
from byteleap.worker.job_logs import JobLog
from byteleap.worker.serving import serving_message, with_free_port

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]

#: JobRefused.detail's bound on the wire.
_MAX_DETAIL = 2000
LOG_DIR = "job-logs"


def refusal(job_id: str, exc: BaseException) -> JobRefused:
    """What the miner is told when a job could not start or broke while running: the
    executor's own reason, ``bad_spec`` for a request its options refuse, else ``worker_error``."""
    if isinstance(exc, ExecutorError):
        reason = exc.reason
    elif isinstance(exc, ValidationError | ValueError):
        reason = "bad_spec"
    else:
        reason = "worker_error"
    detail = str(exc) or type(exc).__name__
    return JobRefused(job_id=job_id, reason=reason[:100], detail=detail[:_MAX_DETAIL])


@dataclass
class JobRunner:
    home: Path
    flush_s: float = 0.2
    # What one job's log, and all jobs' logs together, may take on the worker's disk.
    log_caps: JobLogSettings = field(default_factory=JobLogSettings)
    running: dict[str, Execution] = field(default_factory=dict)
    # How jobs run here (see job_executors); the GPU model a cluster's nodes are selected by.
    executor: ExecutorSetting = "process"
    gpu_model: str | None = None
    executors: Callable[[str], Executor] = executor_for  # an adapter by name
    # Jobs being started, and those of them cancelled meanwhile (stopped once they are up).
    starting: set[str] = field(default_factory=set)
    cancelled: set[str] = field(default_factory=set)
    key: WorkerKey | None = None  # signs each ended job's run times (None: unsigned)
    # Where inputs given by URL are fetched to and kept (see worker.input_cache).
    inputs: WorkerInputSettings = field(default_factory=WorkerInputSettings)
    # How often a running job's checkpoint dir is looked at (see worker.checkpoint_upload).
    checkpoint_poll_s: float = CHECKPOINT_POLL_S

    def __post_init__(self) -> None:
        self.input_cache = InputCache.from_settings(self.inputs, self.home)
        # Logs of jobs a previous run of this worker left: their miner gave up on them.
        self.log_dir = self.home / LOG_DIR
        clear_directory(self.log_dir)
        # A worker deletes a log once sent, never before: past the total, a log is cut.
        self.log_budget = SpillBudget(self.log_caps.max_total_bytes, evicts=False)

    async def run(self, job: JobRequest, send: Send) -> None:
        workdir = self.home / "jobs" / f"{job.job_id}-{job.attempt}"
        path = self.log_dir / f"{job.job_id}-{job.attempt}.log"
        spill = LogSpill(path, cap=self.log_caps.max_job_bytes, budget=self.log_budget)
        joblog = JobLog(job.job_id, spill, send, self.flush_s)
        try:
            await self._run(job, workdir, send, joblog)
        except Exception as exc:  # the job's task must not end without telling the miner
            log.warning("job failed on the worker", extra={"job": job.job_id, "why": repr(exc)})
            with contextlib.suppress(Exception):  # a dropped link: the miner loses the job
                await send(refusal(job.job_id, exc).model_dump_json())
        finally:
            self.starting.discard(job.job_id)
            self.cancelled.discard(job.job_id)
            self.running.pop(job.job_id, None)
            await joblog.close()
            # The result carries what the customer needs; the work dir is scratch.
            await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)

    async def _run(self, job: JobRequest, workdir: Path, send: Send, joblog: JobLog) -> None:
        job, port = with_free_port(job)
        self.starting.add(job.job_id)
        execution = await self._start(job, workdir)
        self.starting.discard(job.job_id)
        self.running[job.job_id] = execution
        try:
            if job.job_id in self.cancelled:  # the cancel came while it started
                await execution.cancel()
            joblog.attach(execution)
            if port is not None:
                await send(serving_message(job, port))
            result = await self._wait_checkpointing(job, workdir, execution, send)
            log_bytes = await joblog.end()
            # Before the end: the miner reports the job ended only once its files are in.
            await send_artifacts(job, result, workdir, send)
            # Tails as a status carries them (they may be 64 MiB each, over a message's size).
            small = clip_result(result, MAX_STATUS_TAIL_BYTES)
            times = self._signed_times(job, result)
            ended = JobEnded(job_id=job.job_id, result=small, log_bytes=log_bytes, times=times)
            await send(ended.model_dump_json())
            await joblog.sent_all()  # the log's last chunks follow the end
        except BaseException:
            # Whatever broke (or cancelled this task), the program must not outlive it.
            with contextlib.suppress(Exception):
                await asyncio.shield(execution.cancel())
            raise

    async def _wait_checkpointing(
        self, job: JobRequest, workdir: Path, execution: Execution, send: Send
    ) -> ExecutionResult:
        """Wait for the program's end, sending its checkpoint dir while it runs (if it names
        one) and once more after: the last set is the one a retry would want."""
        if job.spec.checkpoint_dir is None:
            return await execution.wait()
        base = workdir / job.spec.checkpoint_dir
        watcher = CheckpointWatcher(job.job_id, base, send, self.checkpoint_poll_s)
        # What a retry restored is not sent back: only what this attempt writes.
        watcher.restored = restored_checkpoint(job.spec)
        watching = asyncio.create_task(watcher.watch())
        try:
            result = await execution.wait()
        finally:
            watching.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watching
        await watcher.look()
        return result

    def _signed_times(self, job: JobRequest, result: ExecutionResult) -> JobTimes | None:
        """When the program ran, in this worker's signed word: what the gateway bills."""
        if self.key is None:
            return None
        return sign_job_times(
            self.key.sign,
            job_id=job.job_id,
            attempt=job.attempt,
            worker_id=job.worker_id,
            started_at=result.started_at,
            finished_at=result.finished_at,
        )

    async def _start(self, job: JobRequest, workdir: Path) -> Execution:
        executor = self.executors(job_executor(self.executor, job))
        if isinstance(executor, KubernetesExecutor):  # it refuses URL inputs: none fetched
            options = kubernetes_options(job, self.gpu_model)
            return await executor.start(job.spec, workdir, options)
        if not any(file.is_url for file in job.spec.inputs.values()):
            return await self._start_with(executor, job, workdir, {})
        # Pinned until the executor has copied them into the work dir, not evicted before.
        async with self.input_cache.pinned(job.spec.inputs) as fetched:
            try:
                return await self._start_with(executor, job, workdir, fetched)
            except CorruptInputError as exc:
                await asyncio.to_thread(self.input_cache.discard, exc.context["sha256"])
                raise

    @staticmethod
    async def _start_with(
        executor: Executor, job: JobRequest, workdir: Path, fetched: dict[str, Path]
    ) -> Execution:
        if isinstance(executor, ContainerExecutor):
            options = ContainerOptions(image=job.image)
            return await executor.start(job.spec, workdir, options, fetched=fetched)
        if isinstance(executor, ProcessExecutor):
            return await executor.start(job.spec, workdir, fetched=fetched)
        # Another adapter takes no fetched files: a URL input reaches prepare_workdir unfetched
        # and is refused there.
        return await executor.start(job.spec, workdir)

    async def cancel(self, job_id: str) -> None:
        execution = self.running.get(job_id)
        if execution is not None:
            await execution.cancel()
        elif job_id in self.starting:
            self.cancelled.add(job_id)
