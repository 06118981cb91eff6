"""Failover and exactly-once completion.

Every placement of a job is an ``Attempt`` with a number (1, 2, …) that the worker echoes back
with its result. The ``AttemptLedger`` accepts a result only from the job's current, open
attempt, and only once; so when a worker is declared lost and its jobs are retried elsewhere,
a late result from the lost worker is refused (``accept_result`` is False) and each job
completes exactly once.

A worker declared lost stays lost for the attempts it held, even if its result arrives before
the retry starts: the job has been handed back to the queue, and taking that result would race
the retry.

Attempt states::

    running ──result (final)──▶ completed
       │ ──result (retry)───▶ failed        (the job may get a new attempt)
       │ ──worker lost──────▶ lost          (the job is rescheduled)
       │ ──new attempt──────▶ superseded    (the caller gave up on it, e.g. a timeout)
       └ ──job abandoned────▶ cancelled

The ledger holds no I/O: the store persists ``attempts()`` and rebuilds a ledger from them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from byteleap.gateway.scheduler.errors import SchedulerError, UnknownJob
from byteleap.gateway.scheduler.offers import WorkerKey

__all__ = ["Attempt", "AttemptLedger", "AttemptState", "reschedule"]


class AttemptState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    LOST = "lost"
    SUPERSEDED = "superseded"
    CANCELLED = "cancelled"


# The states after which the job itself is finished: no further attempt, no further result.
_JOB_DONE = frozenset({AttemptState.COMPLETED, AttemptState.CANCELLED})


class Attempt(BaseModel):
    """One placement of a job on a worker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(min_length=1)
    attempt_id: int = Field(ge=1)
    miner_hotkey: str
    worker_id: str
    state: AttemptState = AttemptState.RUNNING

    @property
    def worker(self) -> WorkerKey:
        return (self.miner_hotkey, self.worker_id)


def reschedule(lost_worker: WorkerKey, assignments: Mapping[str, WorkerKey]) -> list[str]:
    """The jobs (in ``assignments`` order) that ran on ``lost_worker`` and must be retried."""
    return [job_id for job_id, worker in assignments.items() if worker == lost_worker]


class AttemptLedger:
    """Attempts per job; the single place that decides whether a result counts."""

    def __init__(self, attempts: Iterable[Attempt] = ()) -> None:
        self._attempts: dict[str, list[Attempt]] = {}
        for attempt in sorted(attempts, key=lambda a: (a.job_id, a.attempt_id)):
            history = self._attempts.setdefault(attempt.job_id, [])
            if attempt.attempt_id != len(history) + 1:
                raise SchedulerError(
                    f"job {attempt.job_id}: attempts must be numbered 1, 2, … without gaps",
                    reason="unknown_attempt",
                    job_id=attempt.job_id,
                )
            history.append(attempt)

    def start(self, job_id: str, worker: WorkerKey) -> Attempt:
        """A new attempt of ``job_id`` on ``worker``; a still-running one is superseded."""
        history = self._attempts.setdefault(job_id, [])
        if self.is_done(job_id):
            raise SchedulerError(
                f"job {job_id} is already finished", reason="job_completed", job_id=job_id
            )
        if history and history[-1].state is AttemptState.RUNNING:
            self._set(job_id, AttemptState.SUPERSEDED)
        attempt = Attempt(
            job_id=job_id, attempt_id=len(history) + 1, miner_hotkey=worker[0], worker_id=worker[1]
        )
        history.append(attempt)
        return attempt

    def accept_result(self, job_id: str, attempt_id: int, *, final: bool = True) -> bool:
        """True exactly once per running attempt, and only for the job's current attempt.

        ``final`` False records a failed attempt that the caller will retry (the job stays
        open); True completes the job. False means the result is stale or a duplicate: drop it.
        """
        history = self._attempts.get(job_id)
        if not history or history[-1].attempt_id != attempt_id:
            return False
        if history[-1].state is not AttemptState.RUNNING:
            return False
        self._set(job_id, AttemptState.COMPLETED if final else AttemptState.FAILED)
        return True

    def worker_lost(self, worker: WorkerKey) -> list[str]:
        """Mark the running attempts on ``worker`` lost; the jobs to retry elsewhere."""
        jobs = reschedule(worker, self.assignments())
        for job_id in jobs:
            self._set(job_id, AttemptState.LOST)
        return jobs

    def abandon(self, job_id: str) -> None:
        """The job is finished without a result (cancelled, timed out): refuse later results."""
        history = self._attempts.get(job_id)
        if not history:
            raise UnknownJob(f"job {job_id} has no attempts", job_id=job_id)
        if history[-1].state in (AttemptState.RUNNING, AttemptState.FAILED, AttemptState.LOST):
            self._set(job_id, AttemptState.CANCELLED)

    def assignments(self) -> dict[str, WorkerKey]:
        """Job → worker for every running attempt."""
        return {
            job_id: history[-1].worker
            for job_id, history in self._attempts.items()
            if history and history[-1].state is AttemptState.RUNNING
        }

    def current(self, job_id: str) -> Attempt | None:
        history = self._attempts.get(job_id)
        return history[-1] if history else None

    def is_done(self, job_id: str) -> bool:
        current = self.current(job_id)
        return current is not None and current.state in _JOB_DONE

    def attempts(self, job_id: str | None = None) -> list[Attempt]:
        """Every attempt (of one job, or of all), oldest first: what the store persists."""
        if job_id is not None:
            return list(self._attempts.get(job_id, []))
        return [a for history in self._attempts.values() for a in history]

    def _set(self, job_id: str, state: AttemptState) -> None:
        history = self._attempts[job_id]
        history[-1] = history[-1].model_copy(update={"state": state})
