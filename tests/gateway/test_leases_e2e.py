"""Leases against a real network: reserve, bill with countersigned receipts, score, end."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from byteleap.chain.local.client import LocalChain
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.errors import Conflict, NotFound
from byteleap.net.messages import WorkerState
from byteleap.net.miner_client import MinerClient
from byteleap.protocol.api import JobSpec, JobState, LeaseSpec, LeaseState
from byteleap.scoring import ScoringParams
from byteleap.store import Store, available, ledger
from byteleap.store.receipts import receipts_in_window
from byteleap.validator.scores import compute_scores
from gateway.gateway_harness import (
    dispatching,
    lease_desk,
    miner_pool,
    network_settings,
    record_pass,
)
from network_fixtures import miner_neuron

pytestmark = pytest.mark.slow


@pytest.fixture
async def gateway(
    network: Any, workers: dict[str, str], store: Store, tmp_path: Path
) -> AsyncIterator[GatewayService]:
    settings = network_settings(network)
    async with miner_pool(network, settings) as pool:
        desk = lease_desk(network, store, pool, settings, bill_period_s=1.0)
        async with dispatching(GatewayService(store, pool, settings, leasing=desk)) as service:
            yield service


async def worker_state(network: Any, worker_id: str) -> WorkerState:
    async with MinerClient(network.validator, await miner_neuron(network)) as client:
        return {w.worker_id: w.state for w in (await client.workers()).workers}[worker_id]


async def wait_for(predicate: Any, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def test_a_lease_is_billed_with_receipts_that_move_lease_scores(
    gateway: GatewayService, network: Any
) -> None:
    tenant = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "renter", balance=5.0)
    )
    lease = await gateway.create_lease(tenant, LeaseSpec(duration_s=60))
    assert lease.state is LeaseState.ACTIVE
    # The tenant sees a CPU lease as such; its receipts still count its cores as the units.
    assert (lease.gpu_model, lease.gpu_count, lease.cpu_cores) == (None, 0, 1)
    assert await worker_state(network, lease.worker_id) is WorkerState.LEASED
    miner = network.miner_wallet.hotkey.ss58_address
    await record_pass(gateway.store, miner, lease.worker_id, at=int(lease.created_at) - 60)

    async def two_receipts() -> bool:
        return (await gateway.get_lease(tenant, lease.id)).receipts >= 2

    await wait_for(two_receipts, "the lease was not billed")
    released = await gateway.release_lease(tenant, lease.id)
    assert released.state is LeaseState.RELEASED and released.cost > 0
    assert await worker_state(network, lease.worker_id) is WorkerState.IDLE
    with pytest.raises(Conflict):
        await gateway.release_lease(tenant, lease.id)

    now = time.time()
    async with gateway.store.session() as s:
        receipts = await receipts_in_window(s, 0, int(now) + 1)
    assert len(receipts) == released.receipts
    assert {(r.gpu_model, r.gpu_count) for r in receipts} == {("cpu", 1)}
    assert sum(r.amount_micro for r in receipts) / 1e6 == pytest.approx(released.cost)
    async with LocalChain(network.chain_url, timeout_s=5) as chain:
        metagraph = await chain.metagraph()
    scores = await compute_scores(
        gateway.store, metagraph, now=now, params=ScoringParams(),
        exclude={network.validator.hotkey.ss58_address},
    )  # fmt: skip
    assert scores.board.lease_active
    assert scores.board.miner(miner).lease == 1.0


@pytest.mark.adversarial
async def test_a_lost_worker_ends_the_lease_and_its_billing(
    gateway: GatewayService, network: Any, workers: dict[str, str]
) -> None:
    tenant = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "unlucky", balance=5.0)
    )
    other = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "nosy", balance=5.0)
    )
    lease = await gateway.create_lease(tenant, LeaseSpec(duration_s=120))
    with pytest.raises(NotFound):
        await gateway.get_lease(other, lease.id)
    name = next(n for n, wid in workers.items() if wid == lease.worker_id)
    network.stop(name, signal.SIGKILL)

    async def failed() -> bool:
        return (await gateway.get_lease(tenant, lease.id)).state is LeaseState.FAILED

    await wait_for(failed, "the lease outlived its worker")
    ended = await gateway.get_lease(tenant, lease.id)
    assert ended.ended_at is not None and ended.billed_until <= ended.ended_at


async def test_jobs_run_on_the_tenants_own_lease(gateway: GatewayService, network: Any) -> None:
    tenant = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "shell", balance=5.0)
    )
    other = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "stranger", balance=5.0)
    )
    lease = await gateway.create_lease(tenant, LeaseSpec(duration_s=60))
    spec = JobSpec(command=[sys.executable, "-c", "print('on my lease')"], lease_id=lease.id)
    with pytest.raises(NotFound):
        await gateway.submit_job(other, spec)
    job = await gateway.submit_job(tenant, spec)

    async def done() -> bool:
        return (await gateway.get_job(tenant, job.id)).state.is_terminal

    await wait_for(done, "the lease job did not finish")
    finished = await gateway.get_job(tenant, job.id)
    assert finished.state is JobState.SUCCEEDED and finished.worker_id == lease.worker_id
    assert "on my lease" in finished.stdout_tail and finished.cost == 0.0
    assert await worker_state(network, lease.worker_id) is WorkerState.LEASED
    await gateway.release_lease(tenant, lease.id)
    with pytest.raises(Conflict):
        await gateway.submit_job(tenant, spec)


@pytest.mark.adversarial
async def test_a_released_lease_stops_its_jobs(gateway: GatewayService, network: Any) -> None:
    """Finding 5: a job on a released lease kept running, on a worker nobody paid for."""
    tenant = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "leaver", balance=5.0)
    )
    lease = await gateway.create_lease(tenant, LeaseSpec(duration_s=120))
    spec = JobSpec(
        command=[sys.executable, "-c", "import time; time.sleep(300)"], lease_id=lease.id
    )
    job = await gateway.submit_job(tenant, spec)

    async def running() -> bool:
        return (await gateway.get_job(tenant, job.id)).state is JobState.RUNNING

    await wait_for(running, "the lease job did not start")
    await gateway.release_lease(tenant, lease.id)

    stopped = await gateway.get_job(tenant, job.id)
    assert stopped.state is JobState.CANCELLED and stopped.error is not None
    assert "lease" in stopped.error

    async def idle() -> bool:
        return await worker_state(network, lease.worker_id) is WorkerState.IDLE

    await wait_for(idle, "the worker still runs the released lease's job", timeout_s=20)


async def test_a_lease_bills_every_started_second_and_releases_its_hold(
    gateway: GatewayService,
) -> None:
    """Finding 5: leases billed whole seconds rounded down, so a 0.56 s lease cost 0."""
    tenant = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "brief", balance=5.0)
    )
    lease = await gateway.create_lease(tenant, LeaseSpec(duration_s=60))
    async with gateway.store.session() as s:
        assert await available(s, tenant.id) == pytest.approx(5.0 - 60 * lease.price_per_s)
    await asyncio.sleep(0.56)
    released = await gateway.release_lease(tenant, lease.id)

    seconds = released.cost / lease.price_per_s
    assert released.cost > 0 and 1 <= round(seconds) <= 2  # its started seconds
    async with gateway.store.session() as s:
        assert await available(s, tenant.id) == pytest.approx(5.0 - released.cost)
        charged = -sum(r.amount for r in await ledger(s, tenant.id))
    assert charged == pytest.approx(released.cost)
