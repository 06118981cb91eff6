"""What every devnet step shares: its options, the state it builds, its errors."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bittensor as bt
from rich.console import Console

from byteleap.chain.local.client import LocalChain
from byteleap.devnet.summary import (
    DevnetSummary,
)
from byteleap.devnet.supervisor import Supervisor
from byteleap.devnet.view import LiveView
from byteleap.errors import ByteleapError
from byteleap.sdk import AsyncClient, LeaseView, Unavailable
from byteleap.validator.scores import ScoreResult

log = logging.getLogger(__name__)


VALIDATOR_STAKE = 1000.0


# ``--cheaters N`` starts one cheating miner for each of the first N (two hotkeys for
# shared-hotkeys), so 8 covers every miner-level cheat and three product cheats (lazy and
# low-precision, caught at the reveal, and wrong-output, caught by output validation); 9 adds
# partial-compute, whose arithmetic refuse-reveal already does. See `proof.cheats`.
CHEATS = (
    "lazy",
    "multiplex",
    "shared-hotkeys",
    "model-spoof",
    "refuse-reveal",
    "wash-lease",
    "wrong-output",
    "low-precision",
    "partial-compute",
)
#: Workers of a multiplexing miner, taking turns on one device lock.
MULTIPLEX_WORKERS = 4
#: The second hotkey of a shared-hotkeys cheat is its first's wallet name with this suffix.
TWIN_SUFFIX = "-twin"
#: The cheats whose workers do something else than the cheat's name says (shared-hotkeys
#: workers are honest: their cheat is the keys they share).
HONEST_WORKERS = frozenset({"shared-hotkeys"})
#: The validator's challenge deadline: generous for CPU workers at n = 256; with cheaters
#: shorter, because a model spoof never commits, so each round waits for its deadline.
CHALLENGE_TTL_S = 20.0
#: With cheaters, every worker stands for one card (``worker.behaviours.paced``): a challenge
#: takes it at least ``DEVICE_PACE_S``, and the deadline is 1.5 times that plus the round trip,
#: as the validator sizes a GPU's. Workers that share one card (``multiplex``) miss it.
DEVICE_PACE_S = 1.5
CHEATERS_CHALLENGE_TTL_S = 1.5 * DEVICE_PACE_S + 0.5


LEASE_RECEIPTS = 3


class DevnetError(ByteleapError):
    reason = "devnet"


@dataclass(frozen=True)
class DevnetOptions:
    home: Path = Path(".devnet")
    miners: int = 3
    cheaters: int = 0  # extra miners that cheat, the first N of CHEATS
    cheats: tuple[str, ...] = ()  # or exactly these (names from CHEATS), one miner each
    workers_per_miner: int = 2
    heartbeat_s: float = 2.0
    rounds: int = 3  # challenge rounds to wait for
    round_interval_s: float = 2.0
    challenge_n: int = 256
    chain_port: int = 0  # 0: pick a free port
    block_time_s: float = 0.25
    tempo: int = 20
    keep_running: bool = False
    # How long each start-up step may take. Every step ends as soon as it is done; the bound
    # only decides how long a broken one takes to say so. 30 s was too short for ten miners'
    # twenty-odd processes starting at once on two loaded cores.
    startup_timeout_s: float = 120.0
    # The validator's and gateways' store: a SQLite file, or a fresh PostgreSQL database
    # (created on ``postgres_url``'s server, dropped first if it exists).
    store: str = "sqlite"  # "sqlite" | "postgres"
    postgres_url: str = "postgresql+asyncpg://postgres@127.0.0.1:5432/byteleap_devnet"
    gateways: int = 1  # replicas of the gateway (more than one needs PostgreSQL)


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
    cheats: dict[str, str] = field(default_factory=dict)  # wallet name -> its cheat
    twins: dict[str, str] = field(default_factory=dict)  # shared-hotkeys: second -> first
    gateway_url: str = ""  # the first replica's; customers' steps use it
    gateway_urls: list[str] = field(default_factory=list)  # every replica's
    gateway_configs: list[Path] = field(default_factory=list)  # every replica's config file
    weights_after: int = 0  # only weights computed after this count (unix seconds)
    api_key: str = ""
    validator_metrics_port: int = 0
    view: LiveView | None = None

    def progress(self, text: str) -> None:
        if self.view is not None:
            self.view.detail = text

    @property
    def wallet_dir(self) -> Path:
        return self.options.home / "wallets"


Step = Callable[[DevnetState], Awaitable[None]]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def check_children(state: DevnetState) -> None:
    for child in state.supervisor.children:
        if not child.alive and not child.may_exit:
            raise DevnetError(f"{child.name} exited; its log:\n{child.tail()}")


def chain_of(state: DevnetState) -> LocalChain:
    if state.chain is None:
        raise DevnetError("the chain step has not run")
    return state.chain


def cheats_of(options: DevnetOptions) -> tuple[str, ...]:
    """The cheat of each cheating miner, in order."""
    unknown = set(options.cheats) - set(CHEATS)
    if unknown:
        raise DevnetError(f"no such cheat: {', '.join(sorted(unknown))}")
    if options.cheats:
        return options.cheats
    return tuple(CHEATS[i % len(CHEATS)] for i in range(options.cheaters))


def miner_names(state: DevnetState) -> list[str]:
    return [name for name in state.wallets if name != "validator"]


def idle_workers_expected(state: DevnetState, name: str) -> int:
    """How many of the miner ``name``'s workers it should list as idle once started: none of
    a wash-lease cheater's, whose impossible claim its miner refuses at enrollment."""
    return 0 if state.cheats.get(name) == "wash-lease" else workers_of(state, name)


def workers_of(state: DevnetState, name: str) -> int:
    """How many workers the miner ``name`` runs."""
    if state.cheats.get(name) == "multiplex":
        return MULTIPLEX_WORKERS
    return state.options.workers_per_miner


def behaviour_of(state: DevnetState, name: str) -> str:
    """The ``--behaviour`` of the miner ``name``'s workers."""
    cheat = state.cheats.get(name, "honest")
    return "honest" if cheat in HONEST_WORKERS else cheat


async def lease_when_free(
    state: DevnetState,
    client: AsyncClient,
    spec: dict[str, Any],
    *,
    wait_s: float,
    on_wait: Callable[[Unavailable], None] | None = None,
) -> LeaseView:
    """A lease, asked for again while no worker can take it now (every one busy: challenged,
    or running a job), as a customer would: a lease takes an idle worker at once or none.
    Raises the last `Unavailable` after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return await client.create_lease(spec)
        except Unavailable as exc:
            check_children(state)
            if time.monotonic() > deadline:
                raise
            if on_wait is not None:
                on_wait(exc)
            await asyncio.sleep(0.3)
