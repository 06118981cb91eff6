"""Output validation against a real network of three miners (chain, miners and workers as
processes): a deterministic job is re-executed on another miner's worker; a worker that
returns a different result is outvoted by a third run, its miner loses its lease score, and
the customer is refunded."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from byteleap.chain.local.client import LocalChain
from byteleap.chain.port import NeuronInfo
from byteleap.config import GatewaySettings, MinerSettings, load_settings
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.miners import MinerApi, MinerPool, Supply
from byteleap.gateway.output_validator import OutputValidator
from byteleap.gateway.scheduler import WorkerOffer
from byteleap.keys import ensure_wallet
from byteleap.miner.runner import ledger_for
from byteleap.net.messages import RunState
from byteleap.net.miner_client import MinerClient
from byteleap.net.tls import load_or_create_identity
from byteleap.protocol.api import JobSpec, JobState, LeaseSpec
from byteleap.scoring import ScoringParams
from byteleap.store import Store, open_store, upgrade
from byteleap.store.money import ledger
from byteleap.store.validations import list_runs, penalised_miners
from byteleap.validator.scores import compute_scores
from gateway.gateway_harness import record_pass
from network_fixtures import Network, wait_for_workers

pytestmark = pytest.mark.slow

# Deterministic work whose output a lying worker cannot guess without running it.
CODE = "import hashlib; print(hashlib.sha256(b'byteleap' * 100000).hexdigest())"


@dataclass
class Miner:
    name: str
    hotkey: str
    workers: dict[str, str] = field(default_factory=dict)  # worker name -> worker id


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _add_miner(network: Network, name: str) -> Path:
    """A second (third …) miner on the fixture's chain, registering itself when it starts."""
    wallets = network.root / "wallets"
    ensure_wallet(name, path=wallets)
    config = network.root / f"{name}.toml"
    config.write_text(
        f'[miner]\nport = {_port()}\nhome = "{network.root / f"{name}-home"}"\n'
        "heartbeat_s = 0.5\nmissed_heartbeats = 3\npermit_cache_s = 0.5\n"
        "rate_per_s = 1000\nrate_burst = 1000\n"
        f'[miner.wallet]\nname = "{name}"\nhotkey = "default"\npath = "{wallets}"\n'
        f'[miner.chain]\nurl = "{network.chain_url}"\n'
    )
    network.start(name, "miner", "run", "--config", str(config))
    return config


def _start_worker(network: Network, config: Path, name: str, behaviour: str) -> None:
    settings = load_settings(MinerSettings, config)
    pin = load_or_create_identity(settings.state_dir).public_key.hex()
    book = ledger_for(settings)
    try:
        token = book.new_token(pin, 600)
    finally:
        book.close()
    network.start(
        name, "worker", "--miner", f"wss://127.0.0.1:{settings.port}/v1/worker",
        "--token", token, "--home", str(network.root / name), "--behaviour", behaviour,
    )  # fmt: skip


async def _served(network: Network, hotkey: str) -> NeuronInfo:
    async with LocalChain(network.chain_url, timeout_s=5) as chain:
        deadline = time.monotonic() + 60
        while True:
            neuron = (await chain.metagraph()).by_hotkey(hotkey)
            if neuron is not None and neuron.certificate:
                return neuron
            assert time.monotonic() < deadline, f"miner {hotkey} never served its axon"
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def miners(network: Network) -> Iterator[dict[str, Miner]]:
    """honest1 (the fixture's miner), honest2, and cheat, whose worker lies about results."""
    plan = {
        "honest1": ("h1", "honest"),
        "honest2": ("h2", "honest"),
        "cheat": ("c1", "wrong-output"),
    }
    configs = {"honest1": network.miner_config}
    for name in ("honest2", "cheat"):
        configs[name] = _add_miner(network, name)
    wallets = network.root / "wallets"
    result = {}
    for name in plan:
        wallet = network.miner_wallet if name == "honest1" else ensure_wallet(name, path=wallets)
        result[name] = Miner(name, wallet.hotkey.ss58_address)

    async def enrolled() -> None:
        neurons = {name: await _served(network, result[name].hotkey) for name in plan}
        for name, (worker, behaviour) in plan.items():  # all at once: each takes seconds
            _start_worker(network, configs[name], worker, behaviour)
        for name, (worker, _) in plan.items():
            async with MinerClient(network.validator, neurons[name]) as client:
                (view,) = await wait_for_workers(client, 1)
            result[name].workers[worker] = view.worker_id

    asyncio.run(enrolled())
    yield result


@dataclass
class PinnedSupply:
    """The real supply, offering only the workers of the miners the test names."""

    inner: Supply
    allowed: set[str] = field(default_factory=set)  # miner hotkeys

    async def offers(self) -> list[WorkerOffer]:
        return [o for o in await self.inner.offers() if o.miner_hotkey in self.allowed]

    async def client(self, hotkey: str) -> MinerApi:
        return await self.inner.client(hotkey)

    async def close(self) -> None:
        await self.inner.close()


@dataclass
class Gateway:
    service: GatewayService
    store: Store
    jobs: PinnedSupply  # where customer jobs and leases go
    reruns: PinnedSupply  # where re-executions go
    pool: MinerPool


@pytest.fixture
async def gateway(
    network: Network, miners: dict[str, Miner], tmp_path: Path
) -> AsyncIterator[Gateway]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await upgrade(url)
    store = await open_store(url)
    settings = GatewaySettings(
        chain={"url": network.chain_url}, home=tmp_path, dispatch_interval_s=0.2,
        metagraph_refresh_s=1.0, validation_fraction=0.0,
    )  # fmt: skip
    chain = LocalChain(network.chain_url, timeout_s=5)
    pool = MinerPool(network.validator, chain, settings)
    jobs, reruns = PinnedSupply(pool), PinnedSupply(pool)
    desk = LeaseDesk(
        store, jobs, settings, hotkey=network.validator.hotkey, netuid=1,
        secret=b"0123456789abcdef0123", bill_period_s=1.0,
    )  # fmt: skip
    validator = OutputValidator(store, reruns, settings)
    service = GatewayService(store, jobs, settings, leasing=desk, validator=validator)
    loop = asyncio.create_task(service.run())
    try:
        yield Gateway(service, store, jobs, reruns, pool)
    finally:
        service.stop()
        await asyncio.gather(loop, return_exceptions=True)
        await pool.close()
        await chain.close()
        await store.close()


async def wait_for(predicate: Any, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


async def _lease_scores(gw: Gateway, network: Network) -> dict[str, float]:
    async with LocalChain(network.chain_url, timeout_s=5) as chain:
        metagraph = await chain.metagraph()
    scores = await compute_scores(
        gw.store, metagraph, now=time.time(), params=ScoringParams(),
        exclude={network.validator.hotkey.ss58_address},
    )  # fmt: skip
    return {m.hotkey: m.lease for m in scores.board.miners}


async def _run_validated(gw: Gateway, name: str, on: str, reruns: set[str]) -> Any:
    """Submit a deterministic, validated job on miner ``on``; re-execute on ``reruns``."""
    tenant = await gw.service.authenticate(await create_tenant_with_key(gw.store, name, balance=5))
    gw.jobs.allowed, gw.reruns.allowed = {on}, reruns
    spec = JobSpec(
        command=[sys.executable, "-c", CODE], deterministic=True, validate_output=True,
        timeout_s=60, retries=0,
    )  # fmt: skip
    job = await gw.service.submit_job(tenant, spec)

    async def decided() -> bool:
        return (await gw.service.get_job(tenant, job.id)).validated in {"match", "mismatch"}

    await wait_for(decided, "the job's output was never validated")
    return tenant, await gw.service.get_job(tenant, job.id)


async def test_a_deterministic_job_is_re_executed_on_another_miner_and_matches(
    gateway: Gateway, miners: dict[str, Miner], network: Network
) -> None:
    honest1, honest2 = miners["honest1"], miners["honest2"]
    tenant, job = await _run_validated(gateway, "checked", honest1.hotkey, {honest2.hotkey})
    assert job.state is JobState.SUCCEEDED and job.validated == "match"
    assert job.miner_hotkey == honest1.hotkey
    async with gateway.store.session() as s:
        runs = await list_runs(s, job.id)
        entries = await ledger(s, tenant.id)
    assert [r.miner_hotkey for r in runs] == [honest1.hotkey, honest2.hotkey]
    assert runs[0].digest == runs[1].digest and not any(r.faulty for r in runs)
    # The re-execution really ran on honest2, and nobody paid for it.
    client = await gateway.pool.client(honest2.hotkey)
    status = await client.job_status(runs[1].miner_job_id)
    assert status.state is RunState.SUCCEEDED and status.result is not None
    assert [e.reason for e in entries] == ["job"] and entries[0].amount == -job.cost


@pytest.mark.adversarial
async def test_a_worker_returning_a_different_result_is_outvoted_and_costs_only_its_miner(
    gateway: Gateway, miners: dict[str, Miner], network: Network
) -> None:
    cheat, honest = miners["cheat"], {miners["honest1"].hotkey, miners["honest2"].hotkey}
    # The cheating miner first earns lease revenue with the same worker.
    renter = await gateway.service.authenticate(
        await create_tenant_with_key(gateway.store, "renter", balance=5)
    )
    gateway.jobs.allowed = {cheat.hotkey}
    lease = await gateway.service.create_lease(renter, LeaseSpec(duration_s=60))
    await record_pass(gateway.store, cheat.hotkey, lease.worker_id, at=int(lease.created_at) - 60)

    async def billed() -> bool:
        return (await gateway.service.get_lease(renter, lease.id)).receipts >= 2

    await wait_for(billed, "the cheat's lease was not billed")
    await gateway.service.release_lease(renter, lease.id)
    assert (await _lease_scores(gateway, network))[cheat.hotkey] == 1.0

    tenant, job = await _run_validated(gateway, "cheated", cheat.hotkey, honest)
    assert job.state is JobState.SUCCEEDED and job.validated == "mismatch"
    async with gateway.store.session() as s:
        runs = await list_runs(s, job.id)
        entries = await ledger(s, tenant.id)
        penalised = await penalised_miners(s, since=0, until=time.time() + 1)
    assert len(runs) == 3 and {r.miner_hotkey for r in runs[1:]} == honest
    assert runs[1].digest == runs[2].digest != runs[0].digest
    assert [r.faulty for r in runs] == [True, False, False]
    assert penalised == {cheat.hotkey}
    # Refunded exactly what the job cost; the honest miners keep everything.
    refund = next(e for e in entries if e.reason == "validation_refund")
    assert job.cost > 0 and refund.amount == pytest.approx(job.cost)
    scores = await _lease_scores(gateway, network)
    assert scores[cheat.hotkey] == 0.0
