"""A tenant's ``max_workers`` against the real `GatewayService`, `LeaseDesk`, dispatcher and
store (SQLite and PostgreSQL: the `store` fixture runs both); the miner is a double that
reserves workers (after a moment, so concurrent creates overlap) and runs jobs until told they
ended. A tenant at its cap is refused a lease (429, nothing changed) and its next job waits
queued while other tenants' jobs are placed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from byteleap.config import GatewaySettings
from byteleap.gateway.core import GatewayService, create_tenant_with_key, hash_key
from byteleap.gateway.errors import QuotaExceeded
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.port import Tenant
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.scheduler import WorkerOffer
from byteleap.protocol.api import JobSpec, JobState, LeaseSpec
from byteleap.store import Store, add_api_key, create_tenant, get_job
from byteleap.store.models import Lease, TenantHold
from byteleap.store.money import balance_and_held
from byteleap.store.quotas import quota_of
from gateway.money_doubles import PRICE, Clock, CpuSupply
from net.receipt_samples import GATEWAY

LEASE = LeaseSpec(duration_s=60)
JOB = JobSpec.model_validate({"command": ["x"], "timeout_s": 60, "max_price_per_s": PRICE})


@dataclass
class LeasingMiner:
    """`CpuSupply`'s miner, which also reserves workers (a moment later) and frees them."""

    jobs: Any
    reserved: dict[str, str] = field(default_factory=dict)  # lease id -> worker id
    released: list[str] = field(default_factory=list)

    async def start_lease(self, request: Any) -> None:
        await asyncio.sleep(0.05)
        self.reserved[request.lease_id] = request.worker_id

    async def release_lease(self, lease_id: str) -> None:
        self.released.append(lease_id)

    def busy(self) -> set[str]:
        leased = {w for lease, w in self.reserved.items() if lease not in self.released}
        started = self.jobs.started.items()
        return leased | {r.worker_id for job, r in started if job not in self.jobs.ended}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.jobs, name)


class Supply(CpuSupply):
    def __init__(self) -> None:
        super().__init__(workers=8)
        self.leasing = LeasingMiner(self.miner)

    async def client(self, hotkey: str) -> Any:
        return self.leasing

    async def offers(self) -> list[WorkerOffer]:
        busy = self.leasing.busy()
        return [o for o in await super().offers() if o.worker_id not in busy]


@dataclass
class Cloud:
    gateway: GatewayService
    supply: Supply
    clock: Clock
    store: Store

    async def tenant(self, name: str, *, max_workers: int = 64) -> tuple[Tenant, str]:
        key = await create_tenant_with_key(self.store, name, balance=10.0, max_workers=max_workers)
        return await self.gateway.authenticate(key), key

    async def state_of(self, job_id: str) -> JobState:
        async with self.store.session() as s:
            return (await get_job(s, job_id)).state


@pytest.fixture
async def cloud(store: Store) -> AsyncIterator[Cloud]:
    settings = GatewaySettings(unplaceable_timeout_s=0.001)
    clock, supply = Clock(), Supply()
    desk = LeaseDesk(
        store, supply, settings, hotkey=GATEWAY, netuid=1, secret=b"s" * 20, clock=clock
    )
    yield Cloud(GatewayService(store, supply, settings, clock=clock, leasing=desk), supply,
                clock, store)  # fmt: skip


@pytest.mark.adversarial
async def test_a_lease_past_the_cap_is_429_over_rest_and_changes_nothing(cloud: Cloud) -> None:
    tenant, key = await cloud.tenant("greedy", max_workers=2)
    app = create_rest_app(cloud.gateway)
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as api:
        for _ in range(2):
            created = await api.post("/v1/leases", json={"duration_s": 60}, headers=auth)
            assert created.status_code == 201, created.text
        async with cloud.store.session() as s:
            before = await balance_and_held(s, tenant.id)
            holds = await s.scalar(sa.select(sa.func.count()).select_from(TenantHold))
            leases = await s.scalar(sa.select(sa.func.count()).select_from(Lease))
        refused = await api.post("/v1/leases", json={"duration_s": 60}, headers=auth)
        assert refused.status_code == 429, refused.text
        body = refused.json()
        assert body["error"] == "quota_exceeded"
        assert "at most 2 workers at once; you hold 2" in body["detail"], body
        shown = (await api.get("/v1/leases", headers=auth)).json()
    assert len(shown) == 2
    async with cloud.store.session() as s:
        assert await balance_and_held(s, tenant.id) == before
        assert await s.scalar(sa.select(sa.func.count()).select_from(TenantHold)) == holds
        assert await s.scalar(sa.select(sa.func.count()).select_from(Lease)) == leases
    assert len(cloud.supply.leasing.reserved) == 2  # the miner was never asked a third time


@pytest.mark.adversarial
async def test_concurrent_lease_creates_at_one_below_the_cap_let_exactly_one_through(
    cloud: Cloud,
) -> None:
    tenant, _ = await cloud.tenant("racer", max_workers=3)
    for _ in range(2):
        await cloud.gateway.create_lease(tenant, LEASE)
    # Every create passes the first count before any stores its lease (the miner takes a
    # moment): the count under the tenant's lock is what lets only one through.
    outcomes = await asyncio.gather(
        *(cloud.gateway.create_lease(tenant, LEASE) for _ in range(4)), return_exceptions=True
    )
    won = [x for x in outcomes if not isinstance(x, BaseException)]
    lost = [x for x in outcomes if isinstance(x, BaseException)]
    assert len(won) == 1 and len(lost) == 3
    assert all(isinstance(x, QuotaExceeded) for x in lost), lost
    async with cloud.store.session() as s:
        assert (await quota_of(s, tenant.id)).workers_held == 3
        assert await s.scalar(sa.select(sa.func.count()).select_from(Lease)) == 3
    # The losers' reservations on the miner were given back.
    assert len(cloud.supply.leasing.released) == 3


async def test_a_tenant_at_its_cap_waits_queued_while_another_is_placed(cloud: Cloud) -> None:
    capped, _ = await cloud.tenant("capped", max_workers=1)
    other, _ = await cloud.tenant("other")
    first = await cloud.gateway.submit_job(capped, JOB)
    cloud.clock.now += 1  # the queue is oldest first
    second = await cloud.gateway.submit_job(capped, JOB)
    theirs = await cloud.gateway.submit_job(other, JOB)
    dispatcher = cloud.gateway.dispatcher

    assert await dispatcher.dispatch_once() == 2  # one of each tenant's, in the same pass
    assert await cloud.state_of(first.id) is JobState.RUNNING
    assert await cloud.state_of(theirs.id) is JobState.RUNNING
    for _ in range(3):  # long past unplaceable_timeout_s: waiting on its quota is no failure
        cloud.clock.now += 10
        assert await dispatcher.dispatch_once() == 0
        assert await cloud.state_of(second.id) is JobState.QUEUED
    assert second.id not in dispatcher.unplaceable_since

    cloud.supply.miner.ended[f"{first.id}-a1"] = 1.0  # its worker is free again
    await dispatcher.monitor_once()
    assert await cloud.state_of(first.id) is JobState.SUCCEEDED
    assert await dispatcher.dispatch_once() == 1
    assert await cloud.state_of(second.id) is JobState.RUNNING


async def test_jobs_on_the_tenants_own_lease_need_no_more_room(cloud: Cloud) -> None:
    tenant, _ = await cloud.tenant("renter", max_workers=1)
    lease = await cloud.gateway.create_lease(tenant, LEASE)
    on_lease = JOB.model_copy(update={"lease_id": lease.id})
    jobs = [await cloud.gateway.submit_job(tenant, on_lease) for _ in range(2)]
    elsewhere = await cloud.gateway.submit_job(tenant, JOB)

    assert await cloud.gateway.dispatcher.dispatch_once() == 2
    assert [await cloud.state_of(j.id) for j in jobs] == [JobState.RUNNING] * 2
    assert await cloud.state_of(elsewhere.id) is JobState.QUEUED  # the lease is its one worker
    async with cloud.store.session() as s:
        assert (await quota_of(s, tenant.id)).workers_held == 1


async def test_max_running_jobs_caps_jobs_wherever_they_run(cloud: Cloud) -> None:
    async with cloud.store.session() as s:
        record = await create_tenant(s, "one-at-a-time", balance=10.0, max_running_jobs=1, at=0)
        await add_api_key(s, record.id, hash_key("blk_one"), at=0)
    tenant = await cloud.gateway.authenticate("blk_one")
    lease = await cloud.gateway.create_lease(tenant, LEASE)
    on_lease = JOB.model_copy(update={"lease_id": lease.id})
    first = await cloud.gateway.submit_job(tenant, on_lease)
    cloud.clock.now += 1
    second = await cloud.gateway.submit_job(tenant, on_lease)

    assert await cloud.gateway.dispatcher.dispatch_once() == 1
    assert await cloud.state_of(first.id) is JobState.RUNNING
    cloud.clock.now += 10
    assert await cloud.gateway.dispatcher.dispatch_once() == 0
    assert await cloud.state_of(second.id) is JobState.QUEUED
