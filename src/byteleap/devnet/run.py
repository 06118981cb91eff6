"""The devnet's main job as a list of named, timed steps."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bittensor as bt
import httpx
from rich.console import Console
from rich.status import Status

from byteleap.chain.local.client import LocalChain
from byteleap.chain.port import NeuronInfo
from byteleap.cloud.gateway.service import create_tenant_with_key
from byteleap.config import GatewaySettings, MinerSettings, load_settings
from byteleap.devnet.summary import (
    ChainSummary,
    DevnetSummary,
    JobSummary,
    LeaseSummary,
    MinerSummary,
    NeuronRow,
    StepResult,
)
from byteleap.devnet.supervisor import Supervisor
from byteleap.errors import ByteleapError
from byteleap.keys import create_wallet
from byteleap.miner.runner import ledger_for
from byteleap.net.tls import load_or_create_identity
from byteleap.scoring import ScoringParams
from byteleap.sdk import AsyncClient
from byteleap.store import StoreError, latest_weights, open_store
from byteleap.validator.miner_client import MinerCallError, MinerClient
from byteleap.validator.scores import ScoreResult, compute_scores

log = logging.getLogger(__name__)

VALIDATOR_STAKE = 1000.0
CHEATS = ("lazy", "partial-compute", "low-precision")
LEASE_RECEIPTS = 3


class DevnetError(ByteleapError):
    reason = "devnet"


@dataclass(frozen=True)
class DevnetOptions:
    home: Path = Path(".devnet")
    miners: int = 2
    cheaters: int = 0  # extra miners whose workers cheat (lazy, partial, low precision)
    workers_per_miner: int = 2
    heartbeat_s: float = 2.0
    rounds: int = 3  # challenge rounds to wait for
    round_interval_s: float = 2.0
    challenge_n: int = 256
    chain_port: int = 0  # 0: pick a free port
    block_time_s: float = 0.25
    tempo: int = 20
    keep_running: bool = False
    startup_timeout_s: float = 30.0


@dataclass
class DevnetState:
    options: DevnetOptions
    supervisor: Supervisor
    console: Console
    summary: DevnetSummary = field(default_factory=DevnetSummary)
    wallets: dict[str, bt.Wallet] = field(default_factory=dict)
    roles: dict[str, str] = field(default_factory=dict)  # hotkey ss58 -> role
    chain: LocalChain | None = None
    chain_url: str = ""
    miner_ports: dict[str, int] = field(default_factory=dict)  # wallet name -> port
    workers_online: dict[str, int] = field(default_factory=dict)  # hotkey -> count
    store_url: str = ""
    scores: ScoreResult | None = None
    accepted_weights: dict[int, float] = field(default_factory=dict)
    cheats: dict[str, str] = field(default_factory=dict)  # wallet name -> worker behaviour
    gateway_url: str = ""
    weights_after: int = 0  # only weights computed after this count (unix seconds)
    api_key: str = ""
    status: Status | None = None

    def progress(self, text: str) -> None:
        if self.status is not None:
            self.status.update(f"[bold]{text}[/]…")

    @property
    def wallet_dir(self) -> Path:
        return self.options.home / "wallets"


Step = Callable[[DevnetState], Awaitable[None]]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def step_keys(state: DevnetState) -> None:
    options = state.options
    names = ["validator"] + [f"miner{i}" for i in range(1, options.miners + 1)]
    for i in range(options.cheaters):
        name = f"cheater{i + 1}"
        names.append(name)
        state.cheats[name] = CHEATS[i % len(CHEATS)]
    for name in names:
        info = create_wallet(name, "default", path=state.wallet_dir)
        state.wallets[name] = bt.Wallet(name, "default", path=str(state.wallet_dir))
        state.roles[info.hotkey_ss58 or ""] = "validator" if name == "validator" else "miner"


async def step_chain(state: DevnetState) -> None:
    options = state.options
    port = options.chain_port or _free_port()
    config = options.home / "chain.toml"
    config.write_text(
        "[chain]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'db_path = "{(options.home / "chain.db").resolve()}"\n'
        f"block_time_s = {options.block_time_s}\ntempo = {options.tempo}\n"
        "max_validators = 1\nimmunity_period = 100\nweights_rate_limit = 2\n"
    )
    child = state.supervisor.start("chain", "chain", "serve", "--config", str(config))
    state.chain_url = f"http://127.0.0.1:{port}"
    state.chain = LocalChain(state.chain_url, netuid=1, timeout_s=5.0)
    deadline = time.monotonic() + options.startup_timeout_s
    while True:
        try:
            await state.chain.current_block()
            return
        except ByteleapError:
            if not child.alive or time.monotonic() > deadline:
                raise DevnetError(f"chain did not start; its log:\n{child.tail()}") from None
            await asyncio.sleep(0.1)


async def step_register(state: DevnetState) -> None:
    chain = _chain(state)
    await chain.register(state.wallets["validator"])
    await chain.add_stake(state.wallets["validator"], VALIDATOR_STAKE)
    await _wait_for_permit(state)


def _miner_names(state: DevnetState) -> list[str]:
    return [name for name in state.wallets if name != "validator"]


async def step_miners(state: DevnetState) -> None:
    """Each miner registers itself and publishes its axon with its TLS key."""
    for name in _miner_names(state):
        port = _free_port()
        state.miner_ports[name] = port
        config = write_miner_config(state, name, port)
        state.supervisor.start(name, "miner", "run", "--config", str(config))
    deadline = time.monotonic() + state.options.startup_timeout_s
    hotkeys = {state.wallets[name].hotkey.ss58_address for name in _miner_names(state)}
    while True:
        metagraph = await _chain(state).metagraph()
        served = {n.hotkey for n in metagraph.neurons if n.hotkey in hotkeys and n.certificate}
        if served == hotkeys:
            return
        _check_children(state)
        if time.monotonic() > deadline:
            raise DevnetError(f"miners without an axon: {sorted(hotkeys - served)}")
        await asyncio.sleep(0.2)


def write_miner_config(state: DevnetState, name: str, port: int) -> Path:
    home = (state.options.home / name).resolve()
    config = state.options.home / f"{name}.toml"
    config.write_text(
        f'[miner]\nport = {port}\nhome = "{home}"\n'
        f"heartbeat_s = {state.options.heartbeat_s}\npermit_cache_s = 1\n"
        f'[miner.wallet]\nname = "{name}"\nhotkey = "default"\n'
        f'path = "{state.wallet_dir.resolve()}"\n'
        f'[miner.chain]\nurl = "{state.chain_url}"\n'
    )
    return config


async def step_workers(state: DevnetState) -> None:
    """Enroll each miner's CPU workers with one-time tokens and wait until they are idle."""
    for name in _miner_names(state):
        settings = load_settings(MinerSettings, state.options.home / f"{name}.toml")
        pin = load_or_create_identity(settings.state_dir).public_key.hex()
        ledger = ledger_for(settings)
        try:
            tokens = [ledger.new_token(pin, 600) for _ in range(state.options.workers_per_miner)]
        finally:
            ledger.close()
        url = f"wss://127.0.0.1:{state.miner_ports[name]}/v1/worker"
        for index, token in enumerate(tokens, start=1):
            home = state.options.home / f"{name}-worker{index}"
            state.supervisor.start(
                f"{name}-worker{index}",
                "worker",
                "--miner",
                url,
                "--token",
                token,
                "--home",
                str(home),
                "--behaviour",
                state.cheats.get(name, "honest"),
            )
    await _wait_for_workers(state)


async def _wait_for_workers(state: DevnetState) -> None:
    metagraph = await _chain(state).metagraph()
    validator = state.wallets["validator"]
    deadline = time.monotonic() + state.options.startup_timeout_s
    for name in _miner_names(state):
        neuron = metagraph.by_hotkey(state.wallets[name].hotkey.ss58_address)
        assert neuron is not None
        while True:
            idle = await _idle_workers(validator, neuron)
            state.workers_online[neuron.hotkey] = idle
            if idle >= state.options.workers_per_miner:
                break
            _check_children(state)
            if time.monotonic() > deadline:
                raise DevnetError(f"{name} has {idle} idle workers")
            await asyncio.sleep(0.2)


async def _idle_workers(validator: bt.Wallet, neuron: NeuronInfo) -> int:
    """Idle workers the miner lists now; 0 while it cannot be reached."""
    try:
        async with MinerClient(validator, neuron, timeout_s=5) as client:
            return sum(1 for w in (await client.workers()).workers if w.state == "idle")
    except MinerCallError:
        return 0


async def step_validator(state: DevnetState) -> None:
    """Start the validator and wait until every worker has passed ``rounds`` challenges."""
    options = state.options
    state.store_url = f"sqlite+aiosqlite:///{(options.home / 'validator.db').resolve()}"
    config = options.home / "validator.toml"
    config.write_text(
        f"[validator]\nround_interval_s = {options.round_interval_s}\n"
        "weights_interval_s = 2\nweights_every_blocks = 4\n"
        f"challenge_n = {options.challenge_n}\nchallenge_ttl_s = 20\n"
        f'[validator.wallet]\nname = "validator"\npath = "{state.wallet_dir.resolve()}"\n'
        f'[validator.chain]\nurl = "{state.chain_url}"\n'
        f'[validator.store]\nurl = "{state.store_url}"\n'
    )
    state.supervisor.start("validator", "validator", "run", "--config", str(config))
    expected = options.miners * options.workers_per_miner
    deadline = time.monotonic() + options.startup_timeout_s + options.rounds * 30
    while True:
        try:
            result = await _score(state)
        except StoreError:  # the validator has not created and migrated its store yet
            result = None
        done = [
            w
            for w in (result.board.workers if result else ())
            if w.successes + w.failures >= options.rounds
        ]
        if result is not None and len(done) >= expected:
            state.scores = result
            return
        _check_children(state)
        if time.monotonic() > deadline:
            raise DevnetError(f"only {len(done)} of {expected} workers finished the rounds")
        state.progress(f"validator: {len(done)}/{expected} workers through {options.rounds} rounds")
        await asyncio.sleep(1.0)


async def _score(state: DevnetState) -> ScoreResult:
    metagraph = await _chain(state).metagraph()
    store = await open_store(state.store_url)
    try:
        validator = state.wallets["validator"].hotkey.ss58_address
        params = ScoringParams(round_interval_s=state.options.round_interval_s)
        return await compute_scores(
            store, metagraph, now=time.time(), params=params, exclude={validator}
        )
    finally:
        await store.close()


async def step_weights(state: DevnetState) -> None:
    """Wait until the validator's weights are accepted and an epoch has paid incentive."""
    deadline = time.monotonic() + state.options.startup_timeout_s
    miners = {state.wallets[name].hotkey.ss58_address for name in _miner_names(state)}
    while True:
        store = await open_store(state.store_url)
        try:
            async with store.session() as s:
                latest = await latest_weights(s, accepted_only=True)
        finally:
            await store.close()
        metagraph = await _chain(state).metagraph()
        paid = [n for n in metagraph.neurons if n.hotkey in miners and n.incentive > 0]
        fresh = latest is not None and latest.computed_at >= state.weights_after
        if latest is not None and fresh and paid:
            state.accepted_weights = latest.weights
            state.scores = await _score(state)
            return
        _check_children(state)
        if time.monotonic() > deadline:
            raise DevnetError("weights were not set and paid within the time limit")
        await asyncio.sleep(0.5)


async def step_gateway(state: DevnetState) -> None:
    """Start the gateway (hosted with the validator's key and store) and make a tenant."""
    port = _free_port()
    config = state.options.home / "gateway.toml"
    config.write_text(
        f"[gateway]\nport = {port}\ngrpc_port = {_free_port()}\n"
        "dispatch_interval_s = 0.2\nmetagraph_refresh_s = 2\n"
        f'bill_period_s = 1\nhome = "{state.options.home.resolve()}"\n'
        f'[gateway.wallet]\nname = "validator"\npath = "{state.wallet_dir.resolve()}"\n'
        f'[gateway.chain]\nurl = "{state.chain_url}"\n'
        f'[gateway.store]\nurl = "{state.store_url}"\n'
    )
    settings = load_settings(GatewaySettings, config)
    store = await open_store(settings.store.url)
    try:
        state.api_key = await create_tenant_with_key(store, "devnet-customer", balance=100.0)
    finally:
        await store.close()
    state.supervisor.start("gateway", "gateway", "run", "--config", str(config))
    state.gateway_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + state.options.startup_timeout_s
    async with httpx.AsyncClient() as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{state.gateway_url}/v1/health")).status_code == 200:
                    return
            _check_children(state)
            if time.monotonic() > deadline:
                raise DevnetError("the gateway did not start")
            await asyncio.sleep(0.2)


async def step_job(state: DevnetState) -> None:
    """A customer submits a job through the SDK and waits for its result."""
    code = "import platform; print('hello from', platform.node(), 'on a byteleap worker')"
    async with AsyncClient(state.gateway_url, state.api_key) as client:
        job = await client.submit(
            {"command": [sys.executable, "-c", code], "timeout_s": 60, "retries": 1}
        )
        done = await client.wait(job.id, timeout_s=60, poll_s=0.2)
    seconds = (
        round(done.finished_at - done.started_at, 3)
        if done.finished_at is not None and done.started_at is not None
        else None
    )
    state.summary.jobs.append(
        JobSummary(id=done.id, state=done.state.value, worker=done.worker_id, seconds=seconds)
    )
    if done.state.value != "succeeded":
        raise DevnetError(f"the sample job ended {done.state.value}: {done.error}")


async def step_lease(state: DevnetState) -> None:
    """A customer rents a worker for a short while; each billed second is receipted."""
    async with AsyncClient(state.gateway_url, state.api_key) as client:
        lease = await client.create_lease({"duration_s": 60})
        deadline = time.monotonic() + 30
        while (await client.get_lease(lease.id)).receipts < LEASE_RECEIPTS:
            _check_children(state)
            if time.monotonic() > deadline:
                raise DevnetError("the lease was not billed")
            await asyncio.sleep(0.3)
        done = await client.release_lease(lease.id)
    state.summary.leases.append(
        LeaseSummary(
            id=done.id, state=done.state.value, receipts=done.receipts, amount=round(done.cost, 6)
        )
    )
    # Weights the validator sets from now on include this lease's revenue.
    state.weights_after = int(time.time()) + 1


def _check_children(state: DevnetState) -> None:
    for child in state.supervisor.children:
        if not child.alive:
            raise DevnetError(f"{child.name} exited; its log:\n{child.tail()}")


async def _wait_for_permit(state: DevnetState) -> None:
    """Permits are assigned at the next epoch; wait for the validator's."""
    chain = _chain(state)
    hotkey = state.wallets["validator"].hotkey.ss58_address
    deadline = time.monotonic() + state.options.startup_timeout_s
    while time.monotonic() < deadline:
        neuron = (await chain.metagraph()).by_hotkey(hotkey)
        if neuron is not None and neuron.validator_permit:
            return
        await asyncio.sleep(state.options.block_time_s)
    raise DevnetError("validator did not receive a validator permit")


async def step_metagraph(state: DevnetState) -> None:
    metagraph = await _chain(state).metagraph()
    state.summary.chain = ChainSummary(block=metagraph.block, neurons=len(metagraph.neurons))
    for neuron in sorted(metagraph.neurons, key=lambda n: n.uid):
        role = state.roles.get(neuron.hotkey, "unknown")
        state.summary.neurons.append(
            NeuronRow(
                uid=neuron.uid,
                hotkey=neuron.hotkey,
                role=role,
                stake=neuron.stake,
                validator_permit=neuron.validator_permit,
            )
        )
        if role == "miner":
            state.summary.miners.append(_miner_summary(state, neuron.uid, neuron.hotkey))


def _miner_summary(state: DevnetState, uid: int, hotkey: str) -> MinerSummary:
    cheater = next(
        (
            cheat
            for name, cheat in state.cheats.items()
            if state.wallets[name].hotkey.ss58_address == hotkey
        ),
        None,
    )
    summary = MinerSummary(
        uid=uid,
        hotkey=hotkey,
        cheater=cheater,
        workers_online=state.workers_online.get(hotkey, 0),
    )
    if state.scores is None:
        return summary
    workers = [w for w in state.scores.board.workers if w.miner_hotkey == hotkey]
    miner = state.scores.board.miner(hotkey)
    return summary.model_copy(
        update={
            "challenges_passed": sum(w.successes for w in workers),
            "challenges_failed": sum(w.failures for w in workers),
            "challenge_score": round(miner.challenge, 6),
            "lease_score": round(miner.lease, 6),
            "weight": round(state.accepted_weights.get(uid, 0.0), 6),
        }
    )


STEPS: list[tuple[str, Step]] = [
    ("keys", step_keys),
    ("chain", step_chain),
    ("register", step_register),
    ("miners", step_miners),
    ("workers", step_workers),
    ("validator", step_validator),
    ("gateway", step_gateway),
    ("job", step_job),
    ("lease", step_lease),
    ("weights", step_weights),
    ("metagraph", step_metagraph),
]


def _chain(state: DevnetState) -> LocalChain:
    if state.chain is None:
        raise DevnetError("the chain step has not run")
    return state.chain


async def _run_steps(state: DevnetState) -> None:
    for name, step in STEPS:
        started = time.monotonic()
        with state.console.status(f"[bold]{name}[/]…") as state.status:
            try:
                await step(state)
                error: str | None = None
            except Exception as exc:  # any failure ends the run with a red step
                log.exception("devnet step failed", extra={"step": name})
                error = f"{type(exc).__name__}: {exc}"
        seconds = round(time.monotonic() - started, 3)
        state.summary.steps.append(
            StepResult(name=name, ok=error is None, seconds=seconds, error=error)
        )
        mark = "[green]✓[/]" if error is None else "[red]✗[/]"
        state.console.print(f"{mark} {name} ({seconds:.2f}s)" + (f": {error}" if error else ""))
        if error is not None:
            state.summary.ok = False
            return


def _fresh_home(home: Path) -> None:
    # Fresh keys and a fresh chain every run; the folder is ours alone.
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)


async def run_devnet(options: DevnetOptions, console: Console) -> DevnetSummary:
    """Run the devnet's steps; children are stopped on return unless keep_running."""
    _fresh_home(options.home)
    supervisor = Supervisor(options.home / "logs")
    state = DevnetState(options=options, supervisor=supervisor, console=console)
    try:
        await _run_steps(state)
        if options.keep_running and state.summary.ok:
            console.print("devnet is running; Ctrl-C stops it")
            await asyncio.Event().wait()
    finally:
        if state.chain is not None:
            await state.chain.close()
        supervisor.stop_all()
    return state.summary


def summary_json(summary: DevnetSummary) -> dict[str, Any]:
    return summary.model_dump(mode="json", exclude={"neurons"})
