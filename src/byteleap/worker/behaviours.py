"""How a worker treats challenges and jobs: honestly, or as one of the known cheats.

Anything but honest exists for tests and `devnet --cheaters`, so everyone can watch the cheats
fail (``proof.cheats``: `Cheat` for faked products, `MinerCheat` for the rest). Every cheat is
a real behaviour of a real worker: it computes what it says it computes, shares what it says
it shares, and answers (or does not) as its cheat would; nothing here fakes a verdict.

- ``multiplex``: solves honestly, but only while it holds the device lock, a file lock that
  all of its miner's multiplexing workers share: they take turns on one "device".
- ``model-spoof``: reports a GPU the machine does not have (``SPOOFED_GPU``) and treats a
  challenge sized for it as that card's much slower stand-in would (`slow_card_solve`): it
  works on it in blocks a host can hold until its deadline, and then gives up. A challenge
  the host can hold is solved honestly.
- ``refuse-reveal``: commits to a half-computed product and refuses every reveal that asks
  for a row it did not compute.
- ``wash-lease``: honest at challenges, but reports ``WASH_CORES`` logical cores, a claim no
  other worker makes, so that its own miner could rent exactly this worker through the
  gateway (the devnet tries, as a customer). No server has that many: the miner refuses the
  worker at enrollment (``protocol.gpu_models.claim_problem``), and where a miner did not,
  the validator would never challenge it and the gateway never offer it. On a CPU-only
  devnet every worker is the same machine, so only a claim singles one out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from byteleap.net.messages import JobEnded, parse_worker_message
from byteleap.proof import (
    Backend,
    ChallengeSpec,
    Cheat,
    Solution,
    cheat_solution,
    cols_of_b,
    run_target,
    solve,
)
from byteleap.proof.cheats import MinerCheat, refusing_solution
from byteleap.proof.matrices import block_of_a
from byteleap.proof.sizing import working_set_bytes
from byteleap.protocol.hardware import GpuInfo, HardwareInventory
from byteleap.worker.jobs import Send

#: The devnet's multiplexing workers share this file in one folder (``--device-lock``).
DEVICE_LOCK_FILE = "device.lock"
#: The most host memory a GPU-spoofing worker lets a challenge take: anything bigger was sized
#: for the card it claims, and it works on that block by block instead.
HOST_BUDGET_BYTES = 256 << 20
#: Rows (and columns) of one block of the product a slow card computes at a time.
SLOW_CARD_BLOCK = 64
#: The share of its time the slow card computes (it rests the remainder): it stands for a card
#: far slower than the claim, and leaves a devnet's other processes their cores.
SLOW_CARD_DUTY = 0.1
#: How long past the deadline the slow card keeps at it before it gives up: its abort comes
#: late, after the miner has timed the challenge out.
SLOW_CARD_LATE_S = 1.0
#: What a ``model-spoof`` worker claims: a common card, with its real memory size.
SPOOFED_GPU = ("NVIDIA H100 80GB HBM3", 81559)
#: The logical cores a ``wash-lease`` worker claims: the most a lease may ask for, which no
#: honest devnet worker has.
WASH_CORES = 4096


class Behaviour(StrEnum):
    """How the worker treats challenges (and, for one, jobs)."""

    HONEST = "honest"
    HANG = "hang"  # accepts challenges and lease probes and never answers
    # Honest at challenges, but returns a different result for every job it ran (a worker
    # that fakes work): the worker cannot tell which jobs are deterministic or re-executed,
    # so a real cheat would have to lie on all of them — output validation catches it.
    WRONG_OUTPUT = "wrong-output"
    LAZY = Cheat.LAZY.value
    PARTIAL = Cheat.PARTIAL.value
    LOW_PRECISION = Cheat.LOW_PRECISION.value
    SPARSE_ERROR = Cheat.SPARSE_ERROR.value
    MULTIPLEX = MinerCheat.MULTIPLEX.value
    MODEL_SPOOF = MinerCheat.MODEL_SPOOF.value
    REFUSE_REVEAL = MinerCheat.REFUSE_REVEAL.value
    WASH_LEASE = MinerCheat.WASH_LEASE.value

    def solve(
        self, spec: ChallengeSpec, backend: str, device_lock: Path, pace_s: float = 0.0
    ) -> Solved:
        """Blocking: run it off the event loop. With ``pace_s``, a challenge takes at least that
        long, as on a device of that speed (see ``paced``)."""
        if self is Behaviour.MULTIPLEX:
            with device_turn(device_lock), paced(pace_s):
                return Solved(solve(spec, *run_target(spec, backend)))
        if self is Behaviour.MODEL_SPOOF:
            return Solved(slow_card_solve(spec))
        with paced(pace_s):
            return self._solve(spec, backend)

    def _solve(self, spec: ChallengeSpec, backend: str) -> Solved:
        if self is Behaviour.REFUSE_REVEAL:
            return Solved(*refusing_solution(spec, random.Random()))
        if self.value in _PRODUCT_CHEATS:
            return Solved(cheat_solution(Cheat(self.value), spec, random.Random()))
        return Solved(solve(spec, *run_target(spec, backend)))

    def claim(self, hardware: HardwareInventory, key_hex: str) -> HardwareInventory:
        """What this worker reports, given what it has."""
        if self is Behaviour.MODEL_SPOOF:
            return with_claimed_gpu(hardware, *SPOOFED_GPU, key_hex)
        if self is Behaviour.WASH_LEASE:
            cpu = hardware.cpu.model_copy(update={"cores_logical": WASH_CORES})
            return hardware.model_copy(update={"cpu": cpu})
        return hardware


_PRODUCT_CHEATS = frozenset(c.value for c in Cheat)


@contextlib.contextmanager
def paced(pace_s: float) -> Iterator[None]:
    """Hold the caller for at least ``pace_s`` seconds in all.

    A devnet runs every worker on one host, so each worker stands for one card by pacing its
    challenges to a card's speed: honest workers, each on its own "card", finish together
    whatever the host's load, and workers that share one card (``multiplex``) finish one after
    another, as they would on a real one.
    """
    started = time.monotonic()
    try:
        yield
    finally:
        left = pace_s - (time.monotonic() - started)
        if left > 0:
            time.sleep(left)


@dataclass(frozen=True)
class Solved:
    solution: Solution
    # The rows a refuse-reveal worker will open (None: any row).
    answerable: frozenset[int] | None = None


@contextlib.contextmanager
def device_turn(path: Path) -> Iterator[None]:
    """Hold the one device shared through the lock file ``path``: an exclusive flock, which
    every process opening the same file waits for, released on exit (or by the kernel when
    the holder dies)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class GaveUp(Exception):
    """A cheating worker gives up a challenge on purpose; the miner hears an abort."""


class Overdue(GaveUp):
    """The challenge's deadline came before its product was done."""


class RevealRefused(GaveUp):
    """A refuse-reveal worker refuses a reveal that asks for rows it did not compute."""


def slow_card_solve(
    spec: ChallengeSpec,
    *,
    clock: Callable[[], float] = time.time,
    sleep: Callable[[float], None] = time.sleep,
    budget_bytes: int = HOST_BUDGET_BYTES,
    block: int = SLOW_CARD_BLOCK,
    duty: float = SLOW_CARD_DUTY,
    late_s: float = SLOW_CARD_LATE_S,
) -> Solution:
    """What a card much slower than the claimed one does with a challenge sized for the claim.

    A challenge whose working set fits ``budget_bytes`` is solved honestly on the host. A
    bigger one never has its operands or its product allocated (a GPU-sized product would
    exhaust a host's memory): the worker computes it in ``block``-square blocks of C from
    freshly generated rows of A and columns of B, busy for ``duty`` of its time, until
    ``late_s`` past the deadline, and raises `Overdue`. A block takes O(block·n) memory, and
    the blocks are thrown away: with no room to keep the product, the worker could not commit
    to it even if it finished, and it cannot finish in time. The caller reports the abort,
    late: the miner has timed the challenge out by then.
    """
    if working_set_bytes(spec.profile, spec.n, spec.products) <= budget_bytes:
        return solve(spec, Backend.NUMPY)
    n, give_up = spec.n, spec.deadline + late_s
    per_side = -(-n // block)
    total = spec.products * per_side * per_side
    done = 0
    for j in range(spec.products):
        for r0 in range(0, n, block):
            a = block_of_a(spec.seed, n, spec.profile, r0, min(n, r0 + block), threads=1, product=j)
            for c0 in range(0, n, block):
                if clock() >= give_up:
                    raise Overdue(f"{done} of {total} blocks done by the deadline")
                started = time.perf_counter()
                b = cols_of_b(spec.seed, n, spec.profile, range(c0, min(n, c0 + block)), product=j)
                _ = a @ b.T
                done += 1
                rest = (time.perf_counter() - started) * (1.0 / duty - 1.0)
                sleep(max(0.0, min(rest, give_up - clock())))
    raise Overdue(f"all {total} blocks done, but a product this size cannot be held")


def with_claimed_gpu(
    hardware: HardwareInventory, model: str, vram_mib: int, key_hex: str
) -> HardwareInventory:
    """``hardware`` reporting one more GPU: ``model`` with ``vram_mib``, which it does not
    have. Its uuid is derived from the worker's key, so it stays the same across reconnects
    (and two workers that share a key share it too)."""
    digest = hashlib.sha256(bytes.fromhex(key_hex)).hexdigest()
    uuid = f"GPU-{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:32]}"
    fake = GpuInfo(
        index=len(hardware.gpus),
        uuid=uuid,
        model=model,
        vram_mib=vram_mib,
        driver_version="550.54.15",
        cuda_version="12.4",
        pci_bus_id=f"00000000:{0x17 + len(hardware.gpus):02X}:00.0",
    )
    return hardware.model_copy(update={"gpus": [*hardware.gpus, fake]})


def wrong_results(send: Send) -> Send:
    """``send`` with every job result altered (stdout changed, as a faked run would)."""

    async def tampered(raw: str) -> None:
        message = parse_worker_message(raw)
        if isinstance(message, JobEnded):
            result = message.result
            wrong = result.model_copy(update={"stdout_tail": result.stdout_tail + "0\n"})
            raw = message.model_copy(update={"result": wrong}).model_dump_json()
        await send(raw)

    return tampered
