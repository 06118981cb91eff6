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
from byteleap.cloud.gateway.errors import Conflict, NotFound
from byteleap.cloud.gateway.leasing import LeaseDesk
from byteleap.cloud.gateway.miners import MinerPool
from byteleap.cloud.gateway.models import JobSpec, JobState, LeaseSpec, LeaseState
from byteleap.cloud.gateway.service import GatewayService, create_tenant_with_key
from byteleap.config import GatewaySettings
from byteleap.net.messages import WorkerState
from byteleap.scoring import ScoringParams
from byteleap.store import Store
from byteleap.store.receipts import receipts_in_window
from byteleap.validator.miner_client import MinerClient
from byteleap.validator.scores import compute_scores
from network_fixtures import miner_neuron

pytestmark = pytest.mark.slow


@pytest.fixture
async def gateway(
    network: Any, workers: dict[str, str], store: Store, tmp_path: Path
) -> AsyncIterator[GatewayService]:
    settings = GatewaySettings(
        chain={"url": network.chain_url}, dispatch_interval_s=0.2, metagraph_refresh_s=1.0
    )
    chain = LocalChain(network.chain_url, timeout_s=5)
    pool = MinerPool(network.validator, chain, settings)
    desk = LeaseDesk(
        store, pool, settings, hotkey=network.validator.hotkey, netuid=1,
        secret=b"0123456789abcdef0123", bill_period_s=1.0,
    )  # fmt: skip
    service = GatewayService(store, pool, settings, leasing=desk)
    loop = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await pool.close()
        await chain.close()


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
    assert lease.state is LeaseState.ACTIVE and lease.gpu_model == "cpu"
    assert await worker_state(network, lease.worker_id) is WorkerState.LEASED

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
    assert sum(r.amount_micro for r in receipts) / 1e6 == pytest.approx(released.cost)
    async with LocalChain(network.chain_url, timeout_s=5) as chain:
        metagraph = await chain.metagraph()
    scores = await compute_scores(
        gateway.store, metagraph, now=now, params=ScoringParams(),
        exclude={network.validator.hotkey.ss58_address},
    )  # fmt: skip
    assert scores.board.lease_active
    assert scores.board.miner(network.miner_wallet.hotkey.ss58_address).lease == 1.0


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
