"""What every devnet step shares: its options, the state it builds, its errors."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import bittensor as bt
from rich.console import Console

from byteleap.chain.local.client import LocalChain
from byteleap.devnet.summary import (
    DevnetSummary,
)
from byteleap.devnet.supervisor import Supervisor
from byteleap.devnet.view import LiveView
from byteleap.errors import ByteleapError
from byteleap.validator.scores import ScoreResult

log = logging.getLogger(__name__)


VALIDATOR_STAKE = 1000.0


# Challenge cheats first: ``--cheaters 2`` and ``3`` show them get (almost) no weight; the
# fourth passes challenges but returns wrong job results, which output validation catches.
CHEATS = ("lazy", "partial-compute", "low-precision", "wrong-output")


LEASE_RECEIPTS = 3


class DevnetError(ByteleapError):
    reason = "devnet"


@dataclass(frozen=True)
class DevnetOptions:
    home: Path = Path(".devnet")
    miners: int = 3
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
        if not child.alive:
            raise DevnetError(f"{child.name} exited; its log:\n{child.tail()}")


def chain_of(state: DevnetState) -> LocalChain:
    if state.chain is None:
        raise DevnetError("the chain step has not run")
    return state.chain


def miner_names(state: DevnetState) -> list[str]:
    return [name for name in state.wallets if name != "validator"]
