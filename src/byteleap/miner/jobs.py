"""The miner's book of jobs: what each worker runs, its logs (bounded) and how it ended.

Pure state, no I/O: the node feeds it the worker's messages; the validator-side
API reads it. Jobs live in memory — a miner restart loses them, and the gateway,
which owns every job, runs lost ones again elsewhere.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from byteleap.miner.artifacts import ArtifactSpool
from byteleap.miner.errors import JobConflict, UnknownJob
from byteleap.net.messages import (
    ArtifactChunk,
    JobEnded,
    JobLogLine,
    JobLogs,
    JobOutput,
    JobRefused,
    JobRequest,
    JobState,
    JobStatus,
)

MAX_LOG_LINES = 10_000
MAX_FINISHED_JOBS = 1_000

_STATE_OF_RESULT = {
    "succeeded": JobState.SUCCEEDED,
    "failed": JobState.FAILED,
    "timed_out": JobState.TIMED_OUT,
    "cancelled": JobState.CANCELLED,
}


@dataclass
class MinerJob:
    request: JobRequest
    state: JobState = JobState.RUNNING
    detail: str = ""
    result: JobEnded | None = None
    lines: deque[JobLogLine] = field(default_factory=lambda: deque(maxlen=MAX_LOG_LINES))
    next_seq: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    endpoint: str | None = None  # a service replica's host:port

    def status(self) -> JobStatus:
        return JobStatus(
            job_id=self.request.job_id,
            attempt=self.request.attempt,
            worker_id=self.request.worker_id,
            state=self.state,
            result=self.result.result if self.result else None,
            detail=self.detail,
            log_lines=self.next_seq,
            endpoint=self.endpoint,
        )

    def _touch(self) -> None:
        # Wake every long-poll waiting on this job, then re-arm for the next change.
        self.changed.set()
        self.changed = asyncio.Event()


class JobBook:
    def __init__(self, artifacts: ArtifactSpool | None = None) -> None:
        self._jobs: dict[str, MinerJob] = {}
        self.artifacts = artifacts or ArtifactSpool()

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
        self._forget_old()
        job = MinerJob(request)
        self._jobs[request.job_id] = job
        return job, True

    def output(self, message: JobOutput) -> None:
        job = self._jobs.get(message.job_id)
        if job is None or job.state.is_terminal:
            return
        for line in message.lines:
            if line.seq >= job.next_seq:  # a resent batch never duplicates lines
                job.lines.append(line)
                job.next_seq = line.seq + 1
        job._touch()

    def artifact(self, chunk: ArtifactChunk) -> None:
        """Spool a chunk of a running job's artifact (it arrives before the job's end)."""
        job = self._jobs.get(chunk.job_id)
        if job is not None and not job.state.is_terminal:
            self.artifacts.receive(job.request, chunk)

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
            job.result = message
            job.detail = message.result.detail
        else:
            job.state = JobState.REFUSED
            job.detail = f"{message.reason}: {message.detail}"
        job._touch()
        return job

    def lose_worker(self, worker_id: str, why: str) -> list[str]:
        """Mark the worker's running jobs lost; returns their ids."""
        lost = []
        for job in self._jobs.values():
            if job.request.worker_id == worker_id and not job.state.is_terminal:
                job.state, job.detail = JobState.LOST, why
                job._touch()
                self.artifacts.drop(job.request.job_id)  # the gateway runs it again
                lost.append(job.request.job_id)
        return lost

    def running_on(self, worker_id: str) -> list[MinerJob]:
        return [
            j
            for j in self._jobs.values()
            if j.request.worker_id == worker_id and not j.state.is_terminal
        ]

    def logs(self, job_id: str, after: int, limit: int = 1000) -> JobLogs:
        job = self.get(job_id)
        lines = [line for line in job.lines if line.seq >= after][:limit]
        done = job.state.is_terminal and (not lines or lines[-1].seq + 1 >= job.next_seq)
        return JobLogs(job_id=job_id, lines=lines, done=done)

    def _forget_old(self) -> None:
        finished = [k for k, j in self._jobs.items() if j.state.is_terminal]
        for job_id in finished[: max(0, len(finished) - MAX_FINISHED_JOBS)]:
            del self._jobs[job_id]
            self.artifacts.drop(job_id)
