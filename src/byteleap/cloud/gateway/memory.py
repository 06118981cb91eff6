"""An in-memory `CloudService`: the twin for testing the code above the port (REST, SDK, CLI).

It is a small but honest implementation: tenants with hashed API keys, per-tenant isolation
(another tenant's job is `NotFound`), idempotency keys, a queued-jobs quota, the job state
table, cancel, and logs that followers see as they are appended. Nothing runs: a test moves a
job along with `start`, `append_log` and `finish`. Every method must be called on the event
loop that serves the API (the followers' wake-up event belongs to it).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Literal

from byteleap.cloud.gateway.errors import (
    Conflict,
    NotFound,
    PaymentRequired,
    QuotaExceeded,
    Unauthorized,
)
from byteleap.cloud.gateway.models import JOB_TRANSITIONS, JobSpec, JobState, JobView, LogEntry
from byteleap.cloud.gateway.port import Tenant

Stream = Literal["stdout", "stderr"]
TAIL_CHARS = 4096


def _key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass
class _Job:
    tenant_id: int
    view: JobView
    logs: list[LogEntry] = field(default_factory=list)


class InMemoryCloudService:
    """`CloudService` held in dicts; see the module docstring."""

    def __init__(self) -> None:
        self._tenants: dict[int, Tenant] = {}
        self._keys: dict[str, int] = {}  # sha256(api key) -> tenant id
        self._jobs: dict[str, _Job] = {}
        self._idempotent: dict[tuple[int, str], str] = {}
        self._changed = asyncio.Event()

    # -- test controls ------------------------------------------------------------------

    def add_tenant(
        self,
        name: str,
        api_key: str,
        *,
        balance: float = 100.0,
        max_running_jobs: int = 10,
        max_queued_jobs: int = 100,
    ) -> Tenant:
        tenant = Tenant(
            id=len(self._tenants) + 1,
            name=name,
            balance=balance,
            max_running_jobs=max_running_jobs,
            max_queued_jobs=max_queued_jobs,
        )
        self._tenants[tenant.id] = tenant
        self._keys[_key_hash(api_key)] = tenant.id
        return tenant

    def job_ids(self) -> list[str]:
        """Every job's id, oldest first, whoever owns it."""
        return list(self._jobs)

    def start(self, job_id: str, worker_id: str = "worker-0") -> JobView:
        job = self._jobs[job_id]
        self._move(job, JobState.SCHEDULED, worker_id=worker_id)
        return self._move(job, JobState.RUNNING, started_at=time.time(), attempts=1)

    def append_log(self, job_id: str, line: str, stream: Stream = "stdout") -> LogEntry:
        job = self._jobs[job_id]
        entry = LogEntry(seq=len(job.logs), stream=stream, line=line, ts=time.time())
        job.logs.append(entry)
        self._wake()
        return entry

    def finish(self, job_id: str, exit_code: int, lines: Iterable[str] = ()) -> JobView:
        """Run the job to its end: start it if needed, log ``lines`` to stdout, then
        succeed (exit code 0) or fail."""
        job = self._jobs[job_id]
        if job.view.state in (JobState.QUEUED, JobState.SCHEDULED):
            self.start(job_id)
        for line in lines:
            self.append_log(job_id, line)
        return self._move(
            job,
            JobState.SUCCEEDED if exit_code == 0 else JobState.FAILED,
            exit_code=exit_code,
            finished_at=time.time(),
            stdout_tail=self._tail(job, "stdout"),
            stderr_tail=self._tail(job, "stderr"),
        )

    # -- the port -----------------------------------------------------------------------

    async def authenticate(self, api_key: str) -> Tenant:
        tenant_id = self._keys.get(_key_hash(api_key))
        if tenant_id is None:
            raise Unauthorized("unknown API key")
        return self._tenants[tenant_id]

    async def submit_job(self, tenant: Tenant, spec: JobSpec) -> JobView:
        key = (tenant.id, spec.idempotency_key) if spec.idempotency_key else None
        if key is not None and key in self._idempotent:
            return self._jobs[self._idempotent[key]].view
        if self._tenants[tenant.id].balance <= 0:
            raise PaymentRequired("balance is not positive", tenant=tenant.name)
        queued = sum(
            1
            for j in self._jobs.values()
            if j.tenant_id == tenant.id and not j.view.state.is_terminal
        )
        if queued >= tenant.max_queued_jobs:
            raise QuotaExceeded(f"at most {tenant.max_queued_jobs} unfinished jobs", queued=queued)
        view = JobView(
            id=f"job-{uuid.uuid4().hex[:16]}",
            state=JobState.QUEUED,
            spec=spec,
            created_at=time.time(),
        )
        self._jobs[view.id] = _Job(tenant_id=tenant.id, view=view)
        if key is not None:
            self._idempotent[key] = view.id
        return view

    async def get_job(self, tenant: Tenant, job_id: str) -> JobView:
        return self._owned(tenant, job_id).view

    async def list_jobs(self, tenant: Tenant, *, limit: int = 100) -> list[JobView]:
        mine = [j.view for j in self._jobs.values() if j.tenant_id == tenant.id]
        return sorted(mine, key=lambda v: v.created_at, reverse=True)[:limit]

    async def cancel_job(self, tenant: Tenant, job_id: str) -> JobView:
        job = self._owned(tenant, job_id)
        if job.view.state.is_terminal:
            raise Conflict(f"job {job_id} already {job.view.state}", state=job.view.state)
        return self._move(job, JobState.CANCELLED, finished_at=time.time())

    async def job_logs(
        self, tenant: Tenant, job_id: str, *, after: int = 0, follow: bool = False
    ) -> AsyncIterator[LogEntry]:
        job = self._owned(tenant, job_id)
        seq = max(0, after)
        while True:
            changed = self._changed  # taken before reading, so no append is missed
            while seq < len(job.logs):
                yield job.logs[seq]
                seq += 1
            if not follow or job.view.state.is_terminal:
                return
            await changed.wait()

    # -- internals ----------------------------------------------------------------------

    def _owned(self, tenant: Tenant, job_id: str) -> _Job:
        job = self._jobs.get(job_id)
        if job is None or job.tenant_id != tenant.id:
            raise NotFound(f"no job {job_id}", job_id=job_id)
        return job

    def _move(self, job: _Job, state: JobState, **changes: object) -> JobView:
        if state not in JOB_TRANSITIONS[job.view.state]:
            raise Conflict(f"job {job.view.id}: {job.view.state} -> {state} is not allowed")
        job.view = job.view.model_copy(update={"state": state, **changes})
        self._wake()
        return job.view

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    @staticmethod
    def _tail(job: _Job, stream: Stream) -> str:
        text = "".join(f"{e.line}\n" for e in job.logs if e.stream == stream)
        return text[-TAIL_CHARS:]
