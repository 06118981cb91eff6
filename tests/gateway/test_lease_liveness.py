"""Lease liveness against a real network: a lease whose workload hangs or whose worker
closes is degraded at once, offered a replacement, and no receipt covers its failure."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from byteleap.chain.local.client import LocalChain
from byteleap.config import GatewaySettings
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.liveness import LeaseWatch
from byteleap.gateway.miners import MinerApi, MinerPool, Supply
from byteleap.gateway.port import Tenant
from byteleap.gateway.scheduler import WorkerOffer
from byteleap.net.messages import WorkerState
from byteleap.net.miner_client import MinerClient
from byteleap.protocol.api import LeaseSpec, LeaseState, LeaseView
from byteleap.store import Store, open_store, upgrade
from byteleap.store.receipts import ReceiptRecord, receipts_in_window
from byteleap.store.validations import lease_health, probe_failures
from network_fixtures import miner_neuron

pytestmark = pytest.mark.slow

SECRET = b"0123456789abcdef0123"


@dataclass
class PinnedSupply:
    """The real supply, offering only the workers the test names (to pick a lease's worker)."""

    inner: Supply
    allowed: set[str] = field(default_factory=set)

    async def offers(self) -> list[WorkerOffer]:
        return [o for o in await self.inner.offers() if o.worker_id in self.allowed]

    async def client(self, hotkey: str) -> MinerApi:
        return await self.inner.client(hotkey)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Gateway:
    service: GatewayService
    desk: LeaseDesk
    supply: PinnedSupply
    store: Store


@pytest.fixture
async def gateway(network: Any, workers: dict[str, str], tmp_path: Path) -> AsyncIterator[Gateway]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await upgrade(url)
    store = await open_store(url)
    settings = GatewaySettings(
        chain={"url": network.chain_url}, home=tmp_path, dispatch_interval_s=0.2,
        metagraph_refresh_s=1.0, lease_probe_interval_s=0.3, lease_probe_timeout_s=0.5,
    )  # fmt: skip
    chain = LocalChain(network.chain_url, timeout_s=5)
    supply = PinnedSupply(MinerPool(network.validator, chain, settings))
    desk = LeaseDesk(
        store, supply, settings, hotkey=network.validator.hotkey, netuid=1, secret=SECRET,
        bill_period_s=1.0,
    )  # fmt: skip
    desk.liveness = watch = LeaseWatch(store, supply, settings, desk)
    service = GatewayService(store, supply, settings, leasing=desk, watch=watch)
    loop = asyncio.create_task(service.run())
    try:
        yield Gateway(service, desk, supply, store)
    finally:
        service.stop()
        await asyncio.gather(loop, return_exceptions=True)
        await supply.close()
        await chain.close()
        await store.close()


async def wait_for(predicate: Any, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.1)


async def rent(gw: Gateway, name: str, worker_id: str) -> tuple[Tenant, LeaseView]:
    tenant = await gw.service.authenticate(
        await create_tenant_with_key(gw.store, name, balance=5.0)
    )
    gw.supply.allowed = {worker_id}
    return tenant, await gw.service.create_lease(tenant, LeaseSpec(duration_s=120))


async def receipts_of(gw: Gateway, lease_id: str) -> list[ReceiptRecord]:
    anonymous = gw.desk.anonymous_id(lease_id)
    async with gw.store.session() as s:
        every = await receipts_in_window(s, 0, int(time.time()) + 10)
    return [r for r in every if r.lease_id == anonymous]


async def degraded(gw: Gateway, tenant: Tenant, lease_id: str) -> LeaseView:
    async def is_degraded() -> bool:
        return (await gw.service.get_lease(tenant, lease_id)).health == "degraded"

    await wait_for(is_degraded, "the lease was never found degraded")
    return await gw.service.get_lease(tenant, lease_id)


async def assert_no_receipt_covers_a_failure(gw: Gateway, lease_id: str) -> None:
    async with gw.store.session() as s:
        failures = await probe_failures(s, lease_id)
        health = (await lease_health(s, [lease_id]))[lease_id]
    assert failures and all(f.reason for f in failures)
    first_failure = min(f.at for f in failures)
    receipts = await receipts_of(gw, lease_id)
    assert all(r.period_end <= health.last_ok_at < first_failure for r in receipts), (
        [(r.period_start, r.period_end) for r in receipts],
        health,
        first_failure,
    )


@pytest.mark.adversarial
async def test_a_lease_whose_workload_hangs_is_never_billed(
    gateway: Gateway, network: Any, workers: dict[str, str]
) -> None:
    """w3 keeps its heartbeats (the miner thinks it is fine) but never answers a probe."""
    tenant, lease = await rent(gateway, "hung", workers["w3"])
    shown = await degraded(gateway, tenant, lease.id)
    assert shown.state is LeaseState.ACTIVE and shown.degraded_reason is not None
    assert shown.degraded_reason.startswith("timeout")
    assert shown.replacement_offer is not None
    assert shown.replacement_offer.resources == lease.spec.resources
    await asyncio.sleep(2.5)  # more than two bill periods
    assert await receipts_of(gateway, lease.id) == []
    assert (await gateway.service.get_lease(tenant, lease.id)).receipts == 0
    async with MinerClient(network.validator, await miner_neuron(network)) as client:
        listed = {w.worker_id: w.state for w in (await client.workers()).workers}
    assert listed[workers["w3"]] is WorkerState.LEASED  # heartbeats alone would not see it
    released = await gateway.service.release_lease(tenant, lease.id)
    assert released.state is LeaseState.RELEASED and released.cost == 0.0
    assert released.health == "degraded" and released.replacement_offer is None


@pytest.mark.adversarial
async def test_receipts_stop_where_the_last_good_probe_was_when_a_worker_freezes(
    gateway: Gateway, network: Any, workers: dict[str, str]
) -> None:
    tenant, lease = await rent(gateway, "frozen", workers["w1"])

    async def billed_twice() -> bool:
        return (await gateway.service.get_lease(tenant, lease.id)).receipts >= 2

    await wait_for(billed_twice, "a healthy lease was not billed")
    pid = network.processes["w1"].pid
    os.killpg(pid, signal.SIGSTOP)
    try:
        shown = await degraded(gateway, tenant, lease.id)
        count = len(await receipts_of(gateway, lease.id))
        await asyncio.sleep(2.5)
        assert len(await receipts_of(gateway, lease.id)) == count  # stopped at once
    finally:
        os.killpg(pid, signal.SIGCONT)
    assert shown.health == "degraded" and shown.replacement_offer is not None
    await asyncio.sleep(1.5)  # the worker is back: the lease stays degraded and unbilled
    assert len(await receipts_of(gateway, lease.id)) == count
    await assert_no_receipt_covers_a_failure(gateway, lease.id)
    ended = await gateway.service.get_lease(tenant, lease.id)
    receipts = await receipts_of(gateway, lease.id)
    assert ended.receipts == len(receipts)
    assert ended.cost == pytest.approx(sum(r.amount_micro for r in receipts) / 1e6)


@pytest.mark.adversarial
async def test_a_lease_whose_worker_closes_fails_and_is_offered_a_replacement(
    gateway: Gateway, network: Any, workers: dict[str, str]
) -> None:
    tenant, lease = await rent(gateway, "closed", workers["w2"])

    async def billed() -> bool:
        return (await gateway.service.get_lease(tenant, lease.id)).receipts >= 1

    await wait_for(billed, "a healthy lease was not billed")
    network.stop("w2", signal.SIGKILL)

    async def failed() -> bool:
        return (await gateway.service.get_lease(tenant, lease.id)).state is LeaseState.FAILED

    await wait_for(failed, "the lease outlived its closed worker")
    shown = await gateway.service.get_lease(tenant, lease.id)
    assert shown.health == "degraded" and shown.degraded_reason is not None
    assert shown.degraded_reason.split(":")[0] in {"ended", "closed", "timeout"}
    offer = shown.replacement_offer
    assert offer is not None and 10 <= offer.duration_s <= 120
    await assert_no_receipt_covers_a_failure(gateway, lease.id)
