"""The devnet's main job as a list of named, timed steps."""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bittensor as bt
from rich.console import Console

from byteleap.chain.local.client import LocalChain
from byteleap.devnet.summary import ChainSummary, DevnetSummary, MinerSummary, NeuronRow, StepResult
from byteleap.devnet.supervisor import Supervisor
from byteleap.errors import ByteleapError
from byteleap.keys import create_wallet

log = logging.getLogger(__name__)

VALIDATOR_STAKE = 1000.0


class DevnetError(ByteleapError):
    reason = "devnet"


@dataclass(frozen=True)
class DevnetOptions:
    home: Path = Path(".devnet")
    miners: int = 2
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
    names = ["validator"] + [f"miner{i}" for i in range(1, state.options.miners + 1)]
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
    state.chain = LocalChain(f"http://127.0.0.1:{port}", netuid=1, timeout_s=5.0)
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
    for wallet in state.wallets.values():
        await chain.register(wallet)
    await chain.add_stake(state.wallets["validator"], VALIDATOR_STAKE)
    await _wait_for_permit(state)


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
            state.summary.miners.append(MinerSummary(uid=neuron.uid, hotkey=neuron.hotkey))


STEPS: list[tuple[str, Step]] = [
    ("keys", step_keys),
    ("chain", step_chain),
    ("register", step_register),
    ("metagraph", step_metagraph),
]


def _chain(state: DevnetState) -> LocalChain:
    if state.chain is None:
        raise DevnetError("the chain step has not run")
    return state.chain


async def _run_steps(state: DevnetState) -> None:
    for name, step in STEPS:
        started = time.monotonic()
        with state.console.status(f"[bold]{name}[/]…"):
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
