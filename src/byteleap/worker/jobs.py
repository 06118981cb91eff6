"""The worker's side of jobs: run each through its executor, stream its logs, report the end.

Logs go to the miner in numbered batches (at most every ``flush_s`` or
``batch_lines`` lines) so a chatty program costs a few messages a second, not
one per line. A cancel stops the program through the executor, which reports
it as cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from byteleap.cloud.executors import (
    ContainerExecutor,
    ContainerOptions,
    Execution,
    Executor,
    ExecutorError,
    KubernetesExecutor,
    executor_for,
)
from byteleap.net.messages import (
    JobEnded,
    JobLogLine,
    JobOutput,
    JobRefused,
    JobRequest,
)
from byteleap.worker.artifacts import send_artifacts
from byteleap.worker.job_executors import ExecutorSetting, job_executor, kubernetes_options
from byteleap.worker.serving import serving_message, with_free_port

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]


@dataclass
class JobRunner:
    home: Path
    flush_s: float = 0.2
    batch_lines: int = 200
    running: dict[str, Execution] = field(default_factory=dict)
    # How jobs run here (see job_executors); the GPU model a cluster's nodes are selected by.
    executor: ExecutorSetting = "process"
    gpu_model: str | None = None
    executors: Callable[[str], Executor] = executor_for  # an adapter by name

    async def run(self, job: JobRequest, send: Send) -> None:
        workdir = self.home / "jobs" / f"{job.job_id}-{job.attempt}"
        job, port = with_free_port(job)
        try:
            execution = await self._start(job, workdir)
        except ExecutorError as exc:
            await send(
                JobRefused(job_id=job.job_id, reason=exc.reason, detail=str(exc)).model_dump_json()
            )
            return
        self.running[job.job_id] = execution
        if port is not None:
            await send(serving_message(job, port))
        try:
            forward = asyncio.create_task(self._forward_logs(job.job_id, execution, send))
            result = await execution.wait()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(forward, timeout=5)
            # Before the end: the miner reports the job ended only once its files are in.
            await send_artifacts(job, result, workdir, send)
            await send(JobEnded(job_id=job.job_id, result=result).model_dump_json())
        finally:
            self.running.pop(job.job_id, None)
            # The result carries what the customer needs; the work dir is scratch.
            await asyncio.to_thread(shutil.rmtree, workdir, ignore_errors=True)

    async def _start(self, job: JobRequest, workdir: Path) -> Execution:
        executor = self.executors(job_executor(self.executor, job))
        if isinstance(executor, ContainerExecutor):
            return await executor.start(job.spec, workdir, ContainerOptions(image=job.image))
        if isinstance(executor, KubernetesExecutor):
            options = kubernetes_options(job, self.gpu_model)
            return await executor.start(job.spec, workdir, options)
        return await executor.start(job.spec, workdir)

    async def cancel(self, job_id: str) -> None:
        execution = self.running.get(job_id)
        if execution is not None:
            await execution.cancel()

    async def _forward_logs(self, job_id: str, execution: Execution, send: Send) -> None:
        """Collect lines as they come; one flusher sends them in order, at least every
        ``flush_s`` (so a quiet program's last line is not held back) or when a batch fills."""
        pending: list[JobLogLine] = []
        wake = asyncio.Event()
        finished = False

        async def collect() -> None:
            nonlocal finished
            seq = 0
            async for line in execution.logs():
                pending.append(
                    JobLogLine(seq=seq, stream=line.stream, line=line.line, ts=line.ts.timestamp())
                )
                seq += 1
                if len(pending) >= self.batch_lines:
                    wake.set()
            finished = True
            wake.set()

        collector = asyncio.create_task(collect())
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), self.flush_s)
                wake.clear()
                while pending:
                    batch = pending[: self.batch_lines]
                    del pending[: len(batch)]
                    await send(JobOutput(job_id=job_id, lines=batch).model_dump_json())
                if finished:
                    return
        finally:
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
