"""Miners for driving the real round runner: real challenges, solved and signed for real at small
n, on simulated devices with realistic timing, served in whatever order a cheat likes.

A `SimulatedDevice` is one GPU: it computes one challenge at a time at its own flop rate, so
workers that share a device wait for each other exactly as they would on one card. A
`SimulatedMiner` speaks the round runner's `MinerSession` (start a batch, long-poll its results,
reveal), with a serving policy:

- ``fifo``: start everything, each worker on its own device (honest) or queued on a shared one;
- ``random``: the same, queued in a random order;
- ``park``: hold every challenge open, let one run, refuse the rest once it has committed;
- ``refuse-reveal``: compute half of every product and refuse any reveal it cannot answer.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from byteleap.chain.port import Metagraph, NeuronInfo
from byteleap.miner.challenge_batches import BatchBook
from byteleap.miner.errors import IllegalTransition, WorkerUnavailable
from byteleap.net.messages import (
    ChallengeBatch,
    ChallengeBatchReply,
    WorkerList,
    WorkerState,
    WorkerView,
)
from byteleap.net.miner_client import MinerCallError
from byteleap.proof import (
    ChallengeSpec,
    Commitment,
    Reveal,
    RevealRequest,
    answer_reveal,
    commit,
    solve,
)
from byteleap.proof.challenge import Solution
from byteleap.proof.cheats import refuses, refusing_solution
from byteleap.protocol.hardware import HardwareInventory
from hardware_samples import gpu_rig

POLICIES = ("fifo", "random", "park", "refuse-reveal")
VALIDATOR = "validator"  # the one caller the book keeps batches for


class SimulatedDevice:
    """One card: one challenge at a time, at ``flops``."""

    def __init__(self, flops: float) -> None:
        self.flops = flops
        self._busy = asyncio.Lock()

    async def compute(self, work_flops: float) -> None:
        async with self._busy:
            await asyncio.sleep(work_flops / self.flops)


@dataclass
class SimulatedWorker:
    view: WorkerView
    key: Ed25519PrivateKey
    device: SimulatedDevice


def simulated_worker(
    index: int,
    device: SimulatedDevice,
    *,
    hardware: HardwareInventory | None = None,
    key: Ed25519PrivateKey | None = None,
) -> SimulatedWorker:
    key = key or Ed25519PrivateKey.generate()
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    view = WorkerView(
        worker_id=f"w-{index:016x}",
        public_key=public,
        state=WorkerState.IDLE,
        profile="cpu-f64",
        hardware=hardware or gpu_rig(0),
        last_seen=0.0,
    )
    return SimulatedWorker(view, key, device)


class SimulatedMiner:
    """A miner whose batches go through the real ``miner.challenge_batches.BatchBook``; only the
    workers behind it (``_commit``) are simulated."""

    def __init__(
        self, hotkey: str, workers: Sequence[SimulatedWorker], policy: str = "fifo", seed: int = 0
    ) -> None:
        assert policy in POLICIES, policy
        self.hotkey = hotkey
        self.fleet = {w.view.worker_id: w for w in workers}
        self.policy = policy
        self.rng = random.Random(seed)
        self.book = BatchBook(self._commit)
        # challenge id -> its solution and the rows it can answer (None: all of them)
        self.solutions: dict[str, tuple[Solution, frozenset[int] | None]] = {}
        self.committed_first = asyncio.Event()
        # Workers a customer took after the validator listed them: their challenges are
        # refused as a real miner refuses them (the worker's state forbids a challenge).
        self.taken: set[str] = set()

    async def __aenter__(self) -> SimulatedMiner:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.book.close()

    def neuron(self, uid: int) -> NeuronInfo:
        return NeuronInfo(
            uid=uid, hotkey=self.hotkey, coldkey=self.hotkey, stake=0.0,
            axon_ip="127.0.0.1", axon_port=1, certificate="00",
        )  # fmt: skip

    async def workers(self) -> WorkerList:
        return WorkerList(miner_hotkey=self.hotkey, workers=[w.view for w in self.fleet.values()])

    async def start_batch(self, batch: ChallengeBatch) -> ChallengeBatchReply:
        items = list(batch.items)
        if self.policy == "random":
            self.rng.shuffle(items)  # the book starts them, and they queue, in this order
        self.committed_first = asyncio.Event()
        reply = self.book.start(VALIDATOR, batch.model_copy(update={"items": items}))
        await asyncio.sleep(0)
        return reply

    async def batch_results(
        self, batch: ChallengeBatch, *, seen: int, wait_s: float
    ) -> ChallengeBatchReply:
        return await self.book.results(VALIDATOR, batch.batch_id, seen=seen, wait_s=wait_s)

    async def reveal(self, request: RevealRequest, n: int) -> Reveal:
        solution, computed = self.solutions.pop(request.challenge_id)
        if computed is not None and refuses(request, computed):
            raise MinerCallError("miner answered 409: refused", reason="illegal_transition")
        return answer_reveal(solution, request)

    async def _commit(self, worker_id: str, spec: ChallengeSpec) -> Commitment:
        worker = self.fleet[worker_id]
        if worker_id in self.taken:
            raise IllegalTransition(f"worker {worker_id} is leased")
        if self.policy == "park" and self.committed_first.is_set():
            raise WorkerUnavailable("parked: another challenge holds the device", reason="busy")
        # The real product is computed off the event loop while the device's time runs, so
        # the simulation's own arithmetic never adds to the hardware's timing.
        solving = asyncio.create_task(asyncio.to_thread(self._solve, spec))
        await worker.device.compute(spec.work_flops)
        solution, computed = await solving
        if self.policy == "park" and self.committed_first.is_set():
            raise WorkerUnavailable("parked: another challenge holds the device", reason="busy")
        self.committed_first.set()
        self.solutions[spec.challenge_id] = (solution, computed)
        return commit(solution, worker.key.sign)

    def _solve(self, spec: ChallengeSpec) -> tuple[Solution, frozenset[int] | None]:
        if self.policy == "refuse-reveal":
            return refusing_solution(spec, self.rng)
        return solve(spec), None


class StaticChain:
    """The one chain call a round makes: the metagraph, here of simulated miners."""

    def __init__(self, miners: Sequence[SimulatedMiner], validator_hotkey: str) -> None:
        neurons = [m.neuron(i + 1) for i, m in enumerate(miners)]
        validator = NeuronInfo(
            uid=0, hotkey=validator_hotkey, coldkey=validator_hotkey, stake=1e6,
            validator_permit=True,
        )  # fmt: skip
        self.graph = Metagraph(netuid=1, block=1, neurons=[validator, *neurons])
        self.by_hotkey = {m.hotkey: m for m in miners}

    async def metagraph(self) -> Metagraph:
        return self.graph

    def connect(self, neuron: NeuronInfo) -> SimulatedMiner:
        return self.by_hotkey[neuron.hotkey]


def as_chain(chain: StaticChain) -> Any:
    """The round runner asks a `ChainPort` for the metagraph alone."""
    return chain
