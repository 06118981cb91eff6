"""An in-memory `CloudService`: the twin for testing the code above the port (REST, SDK, CLI).

It is a small but honest implementation: tenants with hashed API keys, per-tenant isolation
(another tenant's job is `NotFound`), idempotency keys, a queued-jobs quota, the job state
table, cancel, and logs that followers see as they are appended. Nothing runs: a test moves a
job along with `start`, `append_log` and `finish`. Every method must be called on the event
loop that serves the API (the followers' wake-up event belongs to it).

Leases draw on ``capacity`` identical free workers (``lease_gpu_model`` GPUs at
``lease_price_per_s`` per GPU, or per core for a CPU lease); a test sets ``capacity`` to
pretend there is room or not. Billing is price × elapsed seconds of the injected ``clock``,
charged to the tenant when the lease ends; a lease whose time is up expires when next read.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from byteleap.gateway.errors import (
    Conflict,
    InvalidSpec,
    NoCapacity,
    NotFound,
    PaymentRequired,
    QuotaExceeded,
    Unauthorized,
)
from byteleap.gateway.port import Tenant
from byteleap.protocol.api import (
    JOB_TRANSITIONS,
    JobSpec,
    JobState,
    JobView,
    LeaseSpec,
    LeaseState,
    LeaseView,
    LogEntry,
)
from byteleap.protocol.artifacts import (
    ArtifactListing,
    ArtifactView,
    RejectedArtifact,
    check_artifact_path,
)

if TYPE_CHECKING:
    from byteleap.gateway.access import ExecChannel

Stream = Literal["stdout", "stderr"]
TAIL_CHARS = 4096


def _artifact_view(path: str, data: bytes) -> ArtifactView:
    return ArtifactView(path=path, size=len(data), sha256=hashlib.sha256(data).hexdigest())


def _key_hash(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


@dataclass
class _Job:
    tenant_id: int
    view: JobView
    logs: list[LogEntry] = field(default_factory=list)
    artifacts: dict[str, bytes] = field(default_factory=dict)
    rejected: list[RejectedArtifact] = field(default_factory=list)


@dataclass
class _Lease:
    tenant_id: int
    view: LeaseView


class InMemoryCloudService:
    """`CloudService` held in dicts; see the module docstring."""

    lease_gpu_model = "H100"
    lease_price_per_s = 0.001  # per GPU, or per core for a CPU lease

    def __init__(self, *, capacity: int = 0, clock: Callable[[], float] = time.time) -> None:
        self.capacity = capacity  # free workers a lease can take
        self.clock = clock
        self._tenants: dict[int, Tenant] = {}
        self._keys: dict[str, int] = {}  # sha256(api key) -> tenant id
        self._jobs: dict[str, _Job] = {}
        self._leases: dict[str, _Lease] = {}
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
        max_workers: int = 64,
    ) -> Tenant:
        tenant = Tenant(
            id=len(self._tenants) + 1,
            name=name,
            balance=balance,
            max_running_jobs=max_running_jobs,
            max_queued_jobs=max_queued_jobs,
            max_workers=max_workers,
        )
        self._tenants[tenant.id] = tenant
        self._keys[_key_hash(api_key)] = tenant.id
        return tenant

    def revoke_key(self, api_key: str) -> bool:
        """The key stops authenticating (False: it did not)."""
        return self._keys.pop(_key_hash(api_key), None) is not None

    def job_ids(self) -> list[str]:
        """Every job's id, oldest first, whoever owns it."""
        return list(self._jobs)

    def start(self, job_id: str, worker_id: str = "worker-0") -> JobView:
        job = self._jobs[job_id]
        self._move(job, JobState.SCHEDULED, worker_id=worker_id, miner_hotkey="twin-miner")
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

    def give_up(self, job_id: str, error: str) -> JobView:
        """Fail a job that never ran, with the gateway's reason (as one no worker can run
        fails after ``unplaceable_timeout_s``)."""
        return self._move(self._jobs[job_id], JobState.FAILED, error=error, finished_at=time.time())

    def add_artifact(self, job_id: str, path: str, data: bytes) -> None:
        """Keep ``data`` as the job's artifact ``path``, as if the gateway had collected it."""
        self._jobs[job_id].artifacts[check_artifact_path(path)] = data

    def reject_artifact(self, job_id: str, path: str, size: int, reason: str) -> None:
        self._jobs[job_id].rejected.append(RejectedArtifact(path=path, size=size, reason=reason))

    def tenant(self, tenant_id: int) -> Tenant:
        """The tenant as it is now (its balance goes down as leases end)."""
        return self._tenants[tenant_id]

    def lease_ids(self) -> list[str]:
        """Every lease's id, oldest first, whoever holds it."""
        return list(self._leases)

    def fail_lease(self, lease_id: str) -> LeaseView:
        """The lease's worker is lost: the lease fails, billed to now; the worker stays gone."""
        lease = self._leases[lease_id]
        self._settle(lease)
        if lease.view.state.is_terminal:
            raise Conflict(f"lease {lease_id} already ended ({lease.view.state})")
        return self._end_lease(lease, LeaseState.FAILED, self.clock(), frees_worker=False)

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

    async def create_lease(self, tenant: Tenant, spec: LeaseSpec) -> LeaseView:
        r = spec.resources
        units = r.gpu_count or r.cpu_cores
        price = self.lease_price_per_s * units
        if self.capacity <= 0:
            raise NoCapacity("no free worker for a lease now")
        if r.gpu_model is not None and r.gpu_model != self.lease_gpu_model:
            raise NoCapacity(f"no free {r.gpu_model} worker (only {self.lease_gpu_model})")
        if spec.max_price_per_s is not None and spec.max_price_per_s < price:
            raise NoCapacity(f"no worker at {spec.max_price_per_s}/s or less (cheapest {price}/s)")
        balance = self._tenants[tenant.id].balance
        if balance < price * spec.duration_s:
            raise PaymentRequired(
                f"balance {balance:.6f} does not cover {spec.duration_s:.0f}s at {price:.6f}/s"
            )
        self.capacity -= 1
        now = self.clock()
        view = LeaseView(
            id=f"lease-{uuid.uuid4().hex[:16]}",
            state=LeaseState.ACTIVE,
            spec=spec,
            worker_id=f"worker-{len(self._leases)}",
            miner_hotkey="twin-miner",
            gpu_model=self.lease_gpu_model if r.gpu_count else None,
            gpu_count=r.gpu_count,
            cpu_cores=r.cpu_cores,
            price_per_s=price,
            created_at=now,
            ends_at=now + spec.duration_s,
            billed_until=now,
        )
        self._leases[view.id] = _Lease(tenant_id=tenant.id, view=view)
        return view

    async def get_lease(self, tenant: Tenant, lease_id: str) -> LeaseView:
        return self._settle(self._owned_lease(tenant, lease_id))

    async def list_leases(self, tenant: Tenant, *, limit: int = 100) -> list[LeaseView]:
        mine = [self._settle(x) for x in self._leases.values() if x.tenant_id == tenant.id]
        return sorted(mine, key=lambda v: v.created_at, reverse=True)[:limit]

    async def extend_lease(self, tenant: Tenant, lease_id: str, seconds: float) -> LeaseView:
        view = self._active_lease(tenant, lease_id).view
        ends_at = view.ends_at + seconds
        if self._tenants[tenant.id].balance < (ends_at - view.billed_until) * view.price_per_s:
            raise PaymentRequired("the balance does not cover the longer lease")
        lease = self._leases[lease_id]
        lease.view = view.model_copy(update={"ends_at": ends_at})
        return self._settle(lease)

    async def release_lease(self, tenant: Tenant, lease_id: str) -> LeaseView:
        lease = self._active_lease(tenant, lease_id)
        return self._end_lease(lease, LeaseState.RELEASED, self.clock())

    # -- internals ----------------------------------------------------------------------

    def _owned_lease(self, tenant: Tenant, lease_id: str) -> _Lease:
        lease = self._leases.get(lease_id)
        if lease is None or lease.tenant_id != tenant.id:
            raise NotFound(f"no lease {lease_id}", lease_id=lease_id)
        return lease

    def _active_lease(self, tenant: Tenant, lease_id: str) -> _Lease:
        lease = self._owned_lease(tenant, lease_id)
        state = self._settle(lease).state
        if state.is_terminal:
            raise Conflict(f"lease {lease_id} already ended ({state})", state=state)
        return lease

    def _settle(self, lease: _Lease) -> LeaseView:
        """Bring an active lease up to now: billed so far, or expired if its time is up."""
        view = lease.view
        if view.state.is_terminal:
            return view
        now = self.clock()
        if now >= view.ends_at:
            return self._end_lease(lease, LeaseState.EXPIRED, view.ends_at)
        lease.view = view.model_copy(update=self._billed_to(view, now))
        return lease.view

    def _end_lease(
        self, lease: _Lease, state: LeaseState, at: float, *, frees_worker: bool = True
    ) -> LeaseView:
        at = min(at, lease.view.ends_at)
        lease.view = lease.view.model_copy(
            update={"state": state, "ended_at": at, **self._billed_to(lease.view, at)}
        )
        tenant = self._tenants[lease.tenant_id]
        self._tenants[tenant.id] = tenant.model_copy(
            update={"balance": tenant.balance - lease.view.cost}
        )
        if frees_worker:
            self.capacity += 1
        return lease.view

    @staticmethod
    def _billed_to(view: LeaseView, until: float) -> dict[str, float]:
        until = max(until, view.created_at)
        return {"billed_until": until, "cost": (until - view.created_at) * view.price_per_s}

    async def list_artifacts(self, tenant: Tenant, job_id: str) -> ArtifactListing:
        job = self._owned(tenant, job_id)
        return ArtifactListing(
            job_id=job_id,
            artifacts=[_artifact_view(path, data) for path, data in sorted(job.artifacts.items())],
            rejected=list(job.rejected),
        )

    async def open_artifact(
        self, tenant: Tenant, job_id: str, path: str
    ) -> tuple[ArtifactView, AsyncIterator[bytes]]:
        job = self._owned(tenant, job_id)
        try:
            check_artifact_path(path)
        except ValueError as exc:
            raise InvalidSpec(str(exc), field="path") from None
        data = job.artifacts.get(path)
        if data is None:
            raise NotFound(f"no artifact {path!r} of job {job_id}")

        async def chunks() -> AsyncIterator[bytes]:
            yield data

        return _artifact_view(path, data), chunks()

    async def open_lease_exec(self, tenant: Tenant, lease_id: str) -> ExecChannel:
        lease = self._owned_lease(tenant, lease_id)
        if lease.view.state.is_terminal:
            raise Conflict(f"lease {lease_id} already ended ({lease.view.state})")
        raise NoCapacity("the in-memory service runs no programs")

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
