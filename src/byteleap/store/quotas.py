"""A tenant's quotas on what it holds at once, counted from the store.

``max_workers`` bounds the workers a tenant holds at once: those of its active leases, of its
jobs placed on a worker (scheduled or running) and of its live service replicas; a job running
on the tenant's own lease adds nothing (the lease holds that worker already).
``max_running_jobs`` bounds its scheduled and running jobs, wherever they run. Both are read
for many tenants in one round trip (`quotas_of`); a change that must not pass a quota under
concurrent writers reads it under the tenant's row lock (`locked_quota`).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.api import JobState, LeaseState
from byteleap.store.errors import RecordNotFound
from byteleap.store.models import Job, Lease, Service, ServiceReplica, Tenant
from byteleap.store.money import lock_tenant

_PLACED = (JobState.SCHEDULED, JobState.RUNNING)


@dataclass(frozen=True, slots=True)
class TenantQuota:
    tenant_id: int
    max_workers: int
    workers_held: int
    max_running_jobs: int
    running_jobs: int

    @property
    def workers_free(self) -> int:
        """How many more workers the tenant may hold now (0 at or past its cap)."""
        return max(0, self.max_workers - self.workers_held)

    @property
    def jobs_free(self) -> int:
        """How many more of its jobs may be scheduled now."""
        return max(0, self.max_running_jobs - self.running_jobs)

    def workers_message(self) -> str:
        return f"at most {self.max_workers} workers at once; you hold {self.workers_held}"


def _held_workers(tenant_ids: Collection[int]) -> sa.Subquery:
    """(tenant_id, item id), once per worker each tenant holds: its active leases, its live
    replicas, and its placed jobs but for those on a worker its own active lease holds.

    Items, not distinct workers: two of a tenant's items never share a worker but for a job on
    its lease, and counting items stays right even if a worker were ever offered twice."""
    on_own_lease = (
        sa.select(Lease.id)
        .where(
            Lease.tenant_id == Job.tenant_id,
            Lease.state == LeaseState.ACTIVE,
            Lease.miner_hotkey == Job.miner_hotkey,
            Lease.worker_id == Job.worker_id,
        )
        .exists()
    )
    jobs = sa.select(Job.tenant_id, Job.id).where(
        Job.tenant_id.in_(tenant_ids),
        Job.state.in_(_PLACED),
        Job.worker_id.is_not(None),
        ~on_own_lease,
    )
    leases = sa.select(Lease.tenant_id, Lease.id).where(
        Lease.tenant_id.in_(tenant_ids), Lease.state == LeaseState.ACTIVE
    )
    replicas = (
        sa.select(Service.tenant_id, ServiceReplica.id)
        .join(Service, Service.id == ServiceReplica.service_id)
        .where(Service.tenant_id.in_(tenant_ids), ServiceReplica.ended_at.is_(None))
    )
    return sa.union_all(jobs, leases, replicas).subquery()


async def quotas_of(s: AsyncSession, tenant_ids: Collection[int]) -> dict[int, TenantQuota]:
    """Each existing tenant's quotas and what it holds now, in one query."""
    ids = sorted(set(tenant_ids))
    if not ids:
        return {}
    held_rows = _held_workers(ids)
    held = (
        sa.select(held_rows.c.tenant_id, sa.func.count().label("n"))
        .group_by(held_rows.c.tenant_id)
        .subquery()
    )
    running = (
        sa.select(Job.tenant_id, sa.func.count().label("n"))
        .where(Job.tenant_id.in_(ids), Job.state.in_(_PLACED))
        .group_by(Job.tenant_id)
        .subquery()
    )
    stmt = (
        sa.select(
            Tenant.id,
            Tenant.max_workers,
            sa.func.coalesce(held.c.n, 0),
            Tenant.max_running_jobs,
            sa.func.coalesce(running.c.n, 0),
        )
        .outerjoin(held, held.c.tenant_id == Tenant.id)
        .outerjoin(running, running.c.tenant_id == Tenant.id)
        .where(Tenant.id.in_(ids))
    )
    return {
        row[0]: TenantQuota(row[0], int(row[1]), int(row[2]), int(row[3]), int(row[4]))
        for row in await s.execute(stmt)
    }


async def quota_of(s: AsyncSession, tenant_id: int) -> TenantQuota:
    """One tenant's quotas and holdings; :class:`RecordNotFound` for no such tenant."""
    found = (await quotas_of(s, [tenant_id])).get(tenant_id)
    if found is None:
        raise RecordNotFound(f"no tenant {tenant_id}", entity="tenant", id=tenant_id)
    return found


async def locked_quota(s: AsyncSession, tenant_id: int) -> TenantQuota:
    """`quota_of` under the tenant's row lock, held to the end of the transaction: a second
    transaction checking the same tenant waits here and then counts what the first one
    added, so two cannot both pass at one below the cap."""
    await lock_tenant(s, tenant_id)
    return await quota_of(s, tenant_id)


async def set_quotas(
    s: AsyncSession,
    name: str,
    *,
    max_workers: int | None = None,
    max_running_jobs: int | None = None,
    max_queued_jobs: int | None = None,
) -> int:
    """Change the named tenant's quotas (None: keep one) and return its id; a quota lowered
    below what the tenant holds takes nothing away, it only keeps new work waiting.
    :class:`RecordNotFound` for no such tenant, ValueError for a negative quota."""
    given = {
        "max_workers": max_workers,
        "max_running_jobs": max_running_jobs,
        "max_queued_jobs": max_queued_jobs,
    }
    changes = {column: value for column, value in given.items() if value is not None}
    if any(value < 0 for value in changes.values()):
        raise ValueError("quotas cannot be negative")
    tenant_id = await s.scalar(sa.select(Tenant.id).where(Tenant.name == name))
    if tenant_id is None:
        raise RecordNotFound(f"no tenant named {name!r}", entity="tenant", name=name)
    if changes:
        await s.execute(sa.update(Tenant).where(Tenant.id == tenant_id).values(**changes))
    return int(tenant_id)
