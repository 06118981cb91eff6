"""The service layer both customer APIs (REST and gRPC) call: one port, handlers stay thin.

Every method takes the authenticated `Tenant`; a tenant never sees another's work
(another tenant's job is `NotFound`, not forbidden, so ids leak nothing).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Protocol

from pydantic import BaseModel

if TYPE_CHECKING:
    from byteleap.gateway.access import ExecChannel

from byteleap.protocol.api import JobSpec, JobView, LeaseSpec, LeaseView, LogEntry
from byteleap.protocol.artifacts import ArtifactListing, ArtifactView
from byteleap.protocol.billing import DEFAULT_MAX_WORKERS


class Tenant(BaseModel):
    id: int
    name: str
    balance: float
    max_running_jobs: int
    max_queued_jobs: int
    max_workers: int = DEFAULT_MAX_WORKERS


class CloudService(Protocol):
    async def authenticate(self, api_key: str) -> Tenant:
        """The tenant owning ``api_key``; `Unauthorized` otherwise."""
        ...

    async def submit_job(self, tenant: Tenant, spec: JobSpec) -> JobView:
        """Queue a job (the same idempotency key returns the same job)."""
        ...

    async def get_job(self, tenant: Tenant, job_id: str) -> JobView: ...

    async def list_jobs(self, tenant: Tenant, *, limit: int = 100) -> list[JobView]: ...

    async def cancel_job(self, tenant: Tenant, job_id: str) -> JobView:
        """Stop it wherever it is; cancelling a finished job is a `Conflict`."""
        ...

    def job_logs(
        self, tenant: Tenant, job_id: str, *, after: int = 0, follow: bool = False
    ) -> AsyncIterator[LogEntry]:
        """Lines numbered ``after`` and up; with ``follow``, until the job ends."""
        ...

    async def list_artifacts(self, tenant: Tenant, job_id: str) -> ArtifactListing:
        """The job's stored artifacts (path, size, sha256) and the rejected ones with why."""
        ...

    async def open_artifact(
        self, tenant: Tenant, job_id: str, path: str
    ) -> tuple[ArtifactView, AsyncIterator[bytes]]:
        """One stored artifact and its bytes; `NotFound` when there is none, `InvalidSpec`
        (field ``path``) for a path that leaves the artifacts dir."""
        ...

    async def open_lease_exec(self, tenant: Tenant, lease_id: str) -> ExecChannel:
        """A session channel to the lease's worker (frames: ``net.access``); `NotFound` for
        another tenant's lease, `Conflict` once it ended."""
        ...

    async def create_lease(self, tenant: Tenant, spec: LeaseSpec) -> LeaseView:
        """Reserve a worker now (`NoCapacity` when none fits) and start billing it."""
        ...

    async def get_lease(self, tenant: Tenant, lease_id: str) -> LeaseView: ...

    async def list_leases(self, tenant: Tenant, *, limit: int = 100) -> list[LeaseView]: ...

    async def extend_lease(self, tenant: Tenant, lease_id: str, seconds: float) -> LeaseView:
        """Push the end back (the balance must cover the new worst case)."""
        ...

    async def release_lease(self, tenant: Tenant, lease_id: str) -> LeaseView:
        """End it now; billing stops at this second."""
        ...
