"""What a tenant holds against its ``max_workers``, counted in the store (SQLite and
PostgreSQL: the `store` fixture runs both)."""

from __future__ import annotations

import asyncio
import itertools

import pytest
import sqlalchemy as sa

from byteleap.protocol.api import JobState, LeaseState
from byteleap.protocol.billing import DEFAULT_MAX_QUEUED_JOBS, DEFAULT_MAX_WORKERS
from byteleap.protocol.service_spec import ReplicaState, ServiceState
from byteleap.store import (
    JobRecord,
    RecordNotFound,
    Store,
    StoreConflict,
    advance_job,
    create_tenant,
    insert_job,
)
from byteleap.store.cloud import get_tenant
from byteleap.store.leases import LeaseRecord, end_lease, insert_lease
from byteleap.store.models import Tenant
from byteleap.store.quotas import locked_quota, quota_of, quotas_of, set_quotas
from byteleap.store.services import (
    ReplicaRecord,
    ServiceRecord,
    advance_replica,
    insert_replica,
    insert_service,
)

T0 = 1_700_000_000.0
_ids = itertools.count(1)


async def _tenant(store: Store, name: str, **quotas: int) -> int:
    async with store.session() as s:
        return (await create_tenant(s, name, balance=10.0, at=int(T0), **quotas)).id


async def _job(store: Store, tenant: int, state: JobState, worker: str | None) -> str:
    job = JobRecord(
        id=f"job_{next(_ids):06d}", tenant_id=tenant, state=JobState.QUEUED, spec_json="{}",
        idempotency_key=None, attempts=0, worker_id=None, miner_hotkey=None, created_at=T0,
        started_at=None, finished_at=None, exit_code=None, stdout_tail="", stderr_tail="",
        error=None, cost=0.0,
    )  # fmt: skip
    async with store.session() as s:
        await insert_job(s, job)
        if state is not JobState.QUEUED:
            await advance_job(s, job.id, JobState.SCHEDULED, at=T0, worker_id=worker,
                              miner_hotkey="5Hminer")  # fmt: skip
        if state is JobState.RUNNING:
            await advance_job(s, job.id, JobState.RUNNING, at=T0)
    return job.id


async def _lease(store: Store, tenant: int, worker: str) -> str:
    lease = LeaseRecord(
        id=f"lease_{next(_ids):06d}", tenant_id=tenant, state=LeaseState.ACTIVE,
        spec_json="{}", worker_id=worker, miner_hotkey="5Hminer", gpu_model="H100",
        gpu_count=1, price_per_s=0.001, unit_price_micro=1000, created_at=T0,
        ends_at=T0 + 600, ended_at=None, billed_until=T0, cost=0.0, receipts=0,
    )  # fmt: skip
    async with store.session() as s:
        await insert_lease(s, lease)
    return lease.id


async def _replica(store: Store, tenant: int, worker: str) -> str:
    service_id, replica_id = f"svc_{next(_ids):06d}", f"rep_{next(_ids):06d}"
    async with store.session() as s:
        await insert_service(s, ServiceRecord(
            service_id, tenant, service_id, ServiceState.ACTIVE, "{}", 1, 1, T0, T0
        ))  # fmt: skip
        await insert_replica(s, ReplicaRecord(
            replica_id, service_id, 1, ReplicaState.STARTING, worker, "5Hminer", None,
            "H100", 1, 0.001, 1000, T0, None, T0, 0.0, 0, None,
        ))  # fmt: skip
    return replica_id


async def test_a_new_tenant_holds_nothing_under_the_default(store: Store) -> None:
    tenant = await _tenant(store, "acme")
    async with store.session() as s:
        quota = await quota_of(s, tenant)
    assert (quota.max_workers, quota.workers_held, quota.workers_free) == (
        DEFAULT_MAX_WORKERS, 0, DEFAULT_MAX_WORKERS,
    )  # fmt: skip
    assert (quota.running_jobs, quota.max_running_jobs) == (0, DEFAULT_MAX_WORKERS)


async def test_leases_jobs_and_replicas_count_but_a_job_on_its_lease_not(store: Store) -> None:
    tenant = await _tenant(store, "acme", max_workers=5)
    other = await _tenant(store, "other")
    await _job(store, tenant, JobState.QUEUED, None)  # holds nothing yet
    await _job(store, tenant, JobState.SCHEDULED, "w1")
    await _job(store, tenant, JobState.RUNNING, "w2")
    await _lease(store, tenant, "w3")
    await _job(store, tenant, JobState.RUNNING, "w3")  # on its own lease: w3 once
    await _replica(store, tenant, "w4")
    await _lease(store, other, "w5")
    await _job(store, other, JobState.RUNNING, "w6")
    async with store.session() as s:
        quotas = await quotas_of(s, [tenant, other, 999])
    assert set(quotas) == {tenant, other}  # no such tenant: not there
    mine = quotas[tenant]
    assert (mine.workers_held, mine.workers_free, mine.running_jobs) == (4, 1, 3)
    assert mine.workers_message() == "at most 5 workers at once; you hold 4"
    assert (quotas[other].workers_held, quotas[other].running_jobs) == (2, 1)


async def test_what_ended_holds_nothing(store: Store) -> None:
    tenant = await _tenant(store, "acme")
    job = await _job(store, tenant, JobState.RUNNING, "w1")
    lease = await _lease(store, tenant, "w2")
    replica = await _replica(store, tenant, "w3")
    async with store.session() as s:
        assert (await quota_of(s, tenant)).workers_held == 3
        await advance_job(s, job, JobState.SUCCEEDED, at=T0 + 1)
        await end_lease(s, lease, LeaseState.RELEASED, at=T0 + 1)
        await advance_replica(s, replica, ReplicaState.STOPPED, ended_at=T0 + 1)
    async with store.session() as s:
        quota = await quota_of(s, tenant)
    assert (quota.workers_held, quota.running_jobs) == (0, 0)


async def test_no_such_tenant_is_not_found(store: Store) -> None:
    async with store.session() as s:
        with pytest.raises(RecordNotFound):
            await quota_of(s, 12345)
        assert await quotas_of(s, []) == {}


@pytest.mark.adversarial
async def test_a_negative_max_workers_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="negative"):
        await _tenant(store, "acme", max_workers=-1)
    tenant = await _tenant(store, "acme")
    with pytest.raises(StoreConflict, match="ck_tenants_max_workers"):
        async with store.session() as s:
            await s.execute(sa.update(Tenant).where(Tenant.id == tenant).values(max_workers=-1))


async def test_the_locked_count_waits_for_a_concurrent_writer(store: Store) -> None:
    """The second transaction's count, taken under the lock, sees the first one's lease."""
    tenant = await _tenant(store, "acme", max_workers=1)
    first_locked = asyncio.Event()
    release_first = asyncio.Event()

    async def first() -> int:
        async with store.session() as s:
            quota = await locked_quota(s, tenant)
            first_locked.set()
            await release_first.wait()
            await insert_lease(s, LeaseRecord(
                id="lease_first", tenant_id=tenant, state=LeaseState.ACTIVE, spec_json="{}",
                worker_id="w1", miner_hotkey="5Hminer", gpu_model="H100", gpu_count=1,
                price_per_s=0.001, unit_price_micro=1000, created_at=T0, ends_at=T0 + 600,
                ended_at=None, billed_until=T0, cost=0.0, receipts=0,
            ))  # fmt: skip
            return quota.workers_held

    async def second() -> int:
        await first_locked.wait()
        async with store.session() as s:
            return (await locked_quota(s, tenant)).workers_held

    one = asyncio.create_task(first())
    two = asyncio.create_task(second())
    await first_locked.wait()
    await asyncio.sleep(0.3)  # the second is blocked on the lock by now
    assert not two.done()
    release_first.set()
    assert (await one, await two) == (0, 1)


async def test_set_quotas_changes_what_is_given_and_takes_nothing_away(store: Store) -> None:
    acme = await _tenant(store, "acme-quotas", max_workers=4, max_running_jobs=4)
    await _lease(store, acme, "w-1")
    await _lease(store, acme, "w-2")
    async with store.session() as s:
        assert await set_quotas(s, "acme-quotas", max_workers=1) == acme
    async with store.session() as s:
        quota = await quota_of(s, acme)
        tenant = await get_tenant(s, acme)
    # Lowered below what it holds: both leases stay, and it may take no more.
    assert (quota.max_workers, quota.workers_held, quota.workers_free) == (1, 2, 0)
    assert (tenant.max_running_jobs, tenant.max_queued_jobs) == (4, DEFAULT_MAX_QUEUED_JOBS)
    async with store.session() as s:
        with pytest.raises(RecordNotFound):
            await set_quotas(s, "nobody", max_workers=1)
        with pytest.raises(ValueError, match="negative"):
            await set_quotas(s, "acme-quotas", max_running_jobs=-1)
    async with store.session() as s:
        assert (await quota_of(s, acme)).max_running_jobs == 4
