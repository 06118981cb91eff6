"""The miner's book of jobs: what each worker runs, its logs (bounded) and how it ended.

The node feeds it the worker's messages; the validator-side API reads it. Jobs live in
memory — a miner restart loses them, and the gateway, which owns every job, runs lost ones
again elsewhere.

A job's log is not held in memory: it is spilled to a file per job under ``logs_dir``
(``miner.job_logs``), at most ``max_job_log_bytes`` a job and ``max_log_bytes`` for all; past
the total, finished jobs' files are deleted oldest first, and a job's status says what its log
lost. The file is deleted when the job is forgotten. Pages of lines are read from it, bounded
in lines and bytes (``MAX_LOG_PAGE_BYTES``). A result's output tails are kept clipped to what a
status carries (``MAX_STATUS_TAIL_BYTES``).

A cancel the worker never confirms (it is wedged, or the job's task died) ends the job as
cancelled after ``CANCEL_GRACE_S``, so its worker does not stay busy for good.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from byteleap.miner.artifact_spool import ArtifactSpool
from byteleap.miner.errors import JobConflict, UnknownJob
from byteleap.miner.job_logs import ReceivedLog
from byteleap.net.log_spill import LogSpill, SpillBudget, clear_directory
from byteleap.net.messages import (
    MAX_LOG_PAGE_BYTES,
    MAX_STATUS_TAIL_BYTES,
    ArtifactChunk,
    CheckpointSet,
    JobEnded,
    JobLogChunk,
    JobLogs,
    JobOutput,
    JobRefused,
    JobRequest,
    JobStatus,
    RunState,
    clip_result,
)

MAX_FINISHED_JOBS = 1_000
MAX_JOB_LOG_BYTES = 256 << 20
MAX_LOG_BYTES = 2 << 30
#: The most lines a page of a job's log holds (and at most MAX_LOG_PAGE_BYTES of them).
MAX_LOG_PAGE_LINES = 10_000
#: How long a cancelled job waits for its worker's word before it is ended here.
CANCEL_GRACE_S = 30.0


_STATE_OF_RESULT = {
    "succeeded": RunState.SUCCEEDED,
    "failed": RunState.FAILED,
    "timed_out": RunState.TIMED_OUT,
    "cancelled": RunState.CANCELLED,
}


@dataclass
class MinerJob:
    request: JobRequest
    state: RunState = RunState.RUNNING
    detail: str = ""
    log: ReceivedLog = field(kw_only=True)
    result: JobEnded | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    endpoint: str | None = None  # a service replica's host:port
    cancel_by: float | None = None  # when a cancel the worker has not confirmed gives up
    # The latest complete checkpoint set its worker sent; kept when the worker is lost, for
    # the gateway to read before it runs the job again elsewhere.
    checkpoint: CheckpointSet | None = None

    @property
    def next_seq(self) -> int:
        """How many lines its log holds."""
        return self.log.spill.lines

    @property
    def log_done(self) -> bool:
        """Ended, and its whole log is in: no line will be added."""
        return self.state.is_terminal and self.log.complete

    def status(self) -> JobStatus:
        detail = "; ".join(note for note in (self.detail, self._log_note()) if note)
        return JobStatus(
            job_id=self.request.job_id,
            attempt=self.request.attempt,
            worker_id=self.request.worker_id,
            state=self.state,
            result=self.result.result if self.result else None,
            detail=detail,
            log_lines=self.next_seq,
            endpoint=self.endpoint,
            times=self.result.times if self.result else None,
            checkpoint_seq=self.checkpoint.seq if self.checkpoint else None,
        )

    def _log_note(self) -> str:
        log, spill = self.log, self.log.spill
        notes = []
        if spill.dropped_bytes:
            notes.append(f"{spill.dropped_bytes} bytes of log dropped (over the miner's log cap)")
        if spill.evicted:
            notes.append("log deleted to make room for newer jobs' logs")
        if log.broken:
            notes.append(f"log cut: {log.broken}")
        elif log.missing():
            notes.append(f"{log.missing()} bytes of log never arrived from the worker")
        return "; ".join(notes)

    def _touch(self) -> None:
        # Wake every long-poll waiting on this job, then re-arm for the next change.
        self.changed.set()
        self.changed = asyncio.Event()


class JobBook:
    def __init__(
        self,
        artifacts: ArtifactSpool | None = None,
        max_job_log_bytes: int = MAX_JOB_LOG_BYTES,
        max_log_bytes: int = MAX_LOG_BYTES,
        logs_dir: Path | None = None,
    ) -> None:
        self._jobs: dict[str, MinerJob] = {}
        self.artifacts = artifacts or ArtifactSpool()
        self.max_job_log_bytes = max_job_log_bytes
        self.budget = SpillBudget(max_log_bytes)
        # Without a directory (tests, tools): a temporary one, removed by ``close``.
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        if logs_dir is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="byteleap-logs-")
            logs_dir = Path(self._temporary.name)
        self.logs_dir = logs_dir
        clear_directory(logs_dir)  # logs of jobs a restart forgot
        self._names = itertools.count()

    @property
    def log_bytes(self) -> int:
        """What every job's log takes on disk."""
        return self.budget.used

    def close(self) -> None:
        for job in self._jobs.values():
            job.log.spill.delete()
        if self._temporary is not None:
            self._temporary.cleanup()

    def get(self, job_id: str) -> MinerJob:
        job = self._jobs.get(job_id)
        if job is None:
            raise UnknownJob(f"no job {job_id} on this miner", job_id=job_id)
        return job

    def find(self, job_id: str) -> MinerJob | None:
        return self._jobs.get(job_id)

    def start(self, request: JobRequest) -> tuple[MinerJob, bool]:
        """Book a job; (job, True) when new, (existing, False) for a repeated request."""
        existing = self._jobs.get(request.job_id)
        if existing is not None:
            if existing.request == request:
                return existing, False
            if not existing.state.is_terminal:
                raise JobConflict(f"job {request.job_id} is already running here")
        if existing is not None:  # a finished job asked again: its old log goes
            self._forget(request.job_id)
        self._forget_old()
        path = self.logs_dir / f"{next(self._names)}-{request.job_id}.log"
        spill = LogSpill(path, cap=self.max_job_log_bytes, budget=self.budget)
        job = MinerJob(request, log=ReceivedLog(spill))
        self._jobs[request.job_id] = job
        return job, True

    def output(self, message: JobOutput) -> None:
        """Lines from a worker that sends them one by one (before `JobLogChunk`)."""
        job = self._jobs.get(message.job_id)
        if job is not None and not job.state.is_terminal and job.log.lines(message):
            job._touch()

    def log_chunk(self, message: JobLogChunk) -> None:
        """A piece of a job's log; the last ones may come after the job's end."""
        job = self._jobs.get(message.job_id)
        if job is not None and job.log.chunk(message):
            job._touch()

    def artifact(self, chunk: ArtifactChunk) -> None:
        """Spool a chunk of a running job's artifact (it arrives before the job's end)."""
        job = self._jobs.get(chunk.job_id)
        if job is not None and not job.state.is_terminal:
            self.artifacts.receive(job.request, chunk)

    def checkpoint(self, message: CheckpointSet) -> None:
        """Keep a running job's newer checkpoint set (checked whole when it was parsed)."""
        job = self._jobs.get(message.job_id)
        if job is None or job.state.is_terminal or job.request.spec.checkpoint_dir is None:
            return
        if job.checkpoint is None or message.seq > job.checkpoint.seq:
            job.checkpoint = message
            job._touch()

    def serving(self, job_id: str, endpoint: str) -> None:
        job = self._jobs.get(job_id)
        if job is not None and not job.state.is_terminal and job.request.serve:
            job.endpoint = endpoint
            job._touch()

    def end(self, message: JobEnded | JobRefused) -> MinerJob | None:
        job = self._jobs.get(message.job_id)
        if job is None or job.state.is_terminal:
            return None
        if isinstance(message, JobEnded):
            job.state = _STATE_OF_RESULT[message.result.state.value]
            # Kept as small as a status carries it: a tail may be 64 MiB a stream.
            clipped = clip_result(message.result, MAX_STATUS_TAIL_BYTES)
            job.result = message.model_copy(update={"result": clipped})
            job.detail = message.result.detail
            job.log.end(message.log_bytes)
        else:
            job.state = RunState.REFUSED
            job.detail = f"{message.reason}: {message.detail}"
            job.log.close()
        # Only a lost job's set is read again (for its retry): an ended one's is let go, so
        # the finished jobs the book keeps hold no checkpoint bytes.
        job.checkpoint = None
        job._touch()
        return job

    def asked_to_cancel(self, job_id: str, give_up_at: float) -> None:
        job = self.get(job_id)
        if not job.state.is_terminal and job.cancel_by is None:
            job.cancel_by = give_up_at

    def unconfirmed_cancels(self, now: float) -> list[MinerJob]:
        """End as cancelled the jobs whose cancel the worker has not confirmed in time."""
        overdue = []
        for job in self._jobs.values():
            if job.cancel_by is not None and job.cancel_by < now and not job.state.is_terminal:
                job.state = RunState.CANCELLED
                job.detail = "cancelled; the worker did not confirm the cancel in time"
                job.log.close()
                job._touch()
                overdue.append(job)
        return overdue

    def lose_worker(self, worker_id: str, why: str) -> list[str]:
        """Mark the worker's running jobs lost; returns their ids."""
        lost = []
        for job in self._jobs.values():
            if job.request.worker_id != worker_id or job.log_done:
                continue
            job.log.close()  # what is still on its way from the worker will not come
            if not job.state.is_terminal:
                job.state, job.detail = RunState.LOST, why
                self.artifacts.drop(job.request.job_id)  # the gateway runs it again
                lost.append(job.request.job_id)
            job._touch()
        return lost

    def running_on(self, worker_id: str) -> list[MinerJob]:
        return [
            j
            for j in self._jobs.values()
            if j.request.worker_id == worker_id and not j.state.is_terminal
        ]

    def logs(
        self,
        job_id: str,
        after: int,
        limit: int = MAX_LOG_PAGE_LINES,
        max_bytes: int = MAX_LOG_PAGE_BYTES,
    ) -> JobLogs:
        """A page of the job's log from line ``after``: at most ``limit`` lines and
        ``max_bytes`` of JSON (see `JobLogs` for ``more`` and ``done``)."""
        job = self.get(job_id)
        lines = job.log.spill.read(after, min(limit, MAX_LOG_PAGE_LINES), max_bytes)
        more = bool(lines) and lines[-1].seq + 1 < job.next_seq  # (none: an evicted log)
        return JobLogs(job_id=job_id, lines=lines, done=job.log_done and not more, more=more)

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state.is_terminal]
        for job_id in finished[: max(0, len(finished) - MAX_FINISHED_JOBS)]:
            self._forget(job_id)

    def _forget(self, job_id: str) -> None:
        self._jobs.pop(job_id).log.spill.delete()
        self.artifacts.drop(job_id)
