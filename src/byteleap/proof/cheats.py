"""The known cheats: for the network simulation, the devnet's ``--cheaters`` and adversarial
tests.

`Cheat` is how a worker fakes one product: each of them must fail `verify` (sparse errors only
when a sampled entry hits one: that is what the ban after a caught wrong answer is for).
`MinerCheat` is what a miner does around honest-looking products (shares one device, one box,
claims hardware it lacks, refuses what it cannot answer, pays itself): each entry says which
rule defeats it. Pure: no I/O here, so a simulation can import it.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from byteleap.proof.backends import encode_rows, tree_of_rows
from byteleap.proof.challenge import Solution
from byteleap.proof.matrices import full_a, full_b
from byteleap.proof.merkle import TreeKeys
from byteleap.proof.messages import ChallengeSpec, RevealRequest
from byteleap.proof.product import Product

PARTIAL_FRACTION = 0.5  # share of rows a partial cheat really computes
SPARSE_ROW_FRACTION = 0.1  # share of rows a sparse cheat gets one entry wrong in


class Cheat(StrEnum):
    LAZY = "lazy"  # commits to zeros, computes nothing
    PARTIAL = "partial-compute"  # computes half the rows
    LOW_PRECISION = "low-precision"  # multiplies in float32: fast, inexact past 2^24
    SPARSE_ERROR = "sparse-error"  # one entry off by one in a tenth of the rows
    INT8_INPUTS = "int8-inputs"  # int8 tensor-core arithmetic (2× fp16), inputs saturated


class Defence(StrEnum):
    """A rule that takes a cheat's gain away (where it lives, for the reader)."""

    BATCH_CREDIT = "batch-credit"  # scoring.credit: a batch's passes share its elapsed time
    DEADLINE = "deadline"  # a commitment after its challenge's deadline is a timeout
    IDENTITY_FLAG = "identity-flag"  # protocol.identity.duplicated_workers
    CLAIM_SIZED_CHALLENGE = "claim-sized-challenge"  # proof.sizing: sized to the claimed card
    MODEL_BAND = "model-band"  # a throughput outside the claimed model's band earns nothing
    REFUSAL_IS_FAILURE = "refusal-is-failure"  # validator.outcome: refusing after issue fails
    LEASE_RAMP = "lease-ramp"  # scoring: a lease earns a share ramping up to what it cost
    RECENT_CHALLENGE_GATE = "recent-challenge-gate"  # lease revenue needs recent passes
    GATEWAY_CLAIM_REFUSAL = "gateway-claim-refusal"  # the gateway refuses absurd claims


class MinerCheat(StrEnum):
    """Miner-level cheats: every product that is computed is computed exactly, and the gain is
    sought elsewhere. ``description`` says what each does and why it does not pay;
    ``defeated_by`` names the rules."""

    MULTIPLEX = "multiplex"
    SHARED_HOTKEYS = "shared-hotkeys"
    MODEL_SPOOF = "model-spoof"
    REFUSE_REVEAL = "refuse-reveal"
    WASH_LEASE = "wash-lease"

    @property
    def description(self) -> str:
        return _MINER_CHEATS[self][0]

    @property
    def defeated_by(self) -> tuple[Defence, ...]:
        return _MINER_CHEATS[self][1]


_MINER_CHEATS: dict[MinerCheat, tuple[str, tuple[Defence, ...]]] = {
    MinerCheat.MULTIPLEX: (
        "One device behind many workers: the miner lists several workers (the devnet runs "
        "four) whose challenges all run on one device, taking turns (in the devnet, through "
        "one file lock all of them share), each product exact. The validator issues one "
        "challenge to every idle worker of a miner at the same instant and credits each pass "
        "at its work over the time to the batch's last passing commitment, so k turns of one "
        "device take k times as long and the k passes together earn what the one device "
        "earns; a challenge whose turn comes after its deadline is a timeout besides.",
        (Defence.BATCH_CREDIT, Defence.DEADLINE),
    ),
    MinerCheat.SHARED_HOTKEYS: (
        "One box under two hotkeys: two miners list workers with the same identity (the same "
        "worker key, and the same GPU uuids where there are GPUs), so one machine would be "
        "paid twice. `protocol.identity.duplicated_workers` flags every worker that shares a "
        "key or a GPU uuid with another, under any hotkey, and flagged workers earn nothing: "
        "which copy is real cannot be told from outside, so none is paid until one is gone.",
        (Defence.IDENTITY_FLAG,),
    ),
    MinerCheat.MODEL_SPOOF: (
        "A worker claims a faster card than it has (the devnet's: an 'NVIDIA H100 80GB HBM3' "
        "with 81559 MiB, on a CPU). Challenges are sized to the claimed card, so the spoof "
        "gets a product its real hardware cannot hold or finish before the deadline, which is "
        "set from the claimed model's speed: it answers late or not at all. A spoof that did "
        "finish in time would show a throughput outside its claimed model's band, which earns "
        "nothing.",
        (Defence.CLAIM_SIZED_CHALLENGE, Defence.DEADLINE, Defence.MODEL_BAND),
    ),
    MinerCheat.REFUSE_REVEAL: (
        "A worker computes half the rows of each product (as `Cheat.PARTIAL` does), commits, "
        "and refuses every reveal that asks for a row it did not compute, instead of "
        "answering with a wrong row that would count as a caught wrong answer. Any refusal "
        "after a challenge is issued is that challenge's failure, and a reveal of s sampled "
        "rows lands only in computed rows with probability 2^-s: refusing costs as much as "
        "being caught.",
        (Defence.REFUSAL_IS_FAILURE,),
    ),
    MinerCheat.WASH_LEASE: (
        "The miner rents its own worker through the gateway as a customer, with a placement "
        "filter only that worker matches (its exact claim: in the CPU-only devnet, a core "
        "count no other worker reports), for the smallest lease it can, so that its verified "
        "lease revenue (70% of the score) is money it paid itself. A lease's share of the "
        "score ramps up to at most what it cost, lease revenue counts only for workers that "
        "recently passed challenges, and the gateway refuses claims no real machine makes, "
        "which a made-up unique claim would need.",
        (Defence.LEASE_RAMP, Defence.RECENT_CHALLENGE_GATE, Defence.GATEWAY_CLAIM_REFUSAL),
    ),
}


def _per_product(
    spec: ChallengeSpec,
    rows_of: Callable[[npt.NDArray[np.float64], npt.NDArray[np.float64]], npt.NDArray[np.int32]],
) -> npt.NDArray[np.int32]:
    """The committed rows (products·n of them) with product j computed by ``rows_of(A_j, B_j)``."""
    n, seed, profile = spec.n, spec.seed, spec.profile
    return np.concatenate(
        [
            rows_of(full_a(seed, n, profile, product=j), full_b(seed, n, profile, product=j))
            for j in range(spec.products)
        ]
    )


def exact_rows(spec: ChallengeSpec) -> npt.NDArray[np.int32]:
    return _per_product(spec, lambda a, b: encode_rows(a @ b))


def int8_product(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
    """What int8 inputs with int32 accumulation give: exact whenever every entry fits int8."""
    # float64 BLAS on saturated values is bit-identical to an int8 product (|sums| < 2^53).
    return encode_rows(np.clip(a, -128, 127) @ np.clip(b, -128, 127))


def _float32_product(
    a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]
) -> npt.NDArray[np.int32]:
    return encode_rows((a.astype(np.float32) @ b.astype(np.float32)).astype(np.float64))


def partial_rows(
    spec: ChallengeSpec, rng: random.Random
) -> tuple[npt.NDArray[np.int32], frozenset[int]]:
    """A partial cheat's rows (the skipped ones zero) and the indices it really computed."""
    count = spec.row_count
    rows = exact_rows(spec).copy()
    skipped = rng.sample(range(count), count - round(count * PARTIAL_FRACTION))
    rows[skipped] = 0
    return rows, frozenset(range(count)) - frozenset(skipped)


def refuses(request: RevealRequest, computed: frozenset[int]) -> bool:
    """Whether a refuse-reveal cheat refuses ``request``: it asks for a row not computed."""
    return not computed.issuperset(request.rows)


def cheat_rows(cheat: Cheat, spec: ChallengeSpec, rng: random.Random) -> npt.NDArray[np.int32]:
    """The rows ``cheat`` would commit to for ``spec`` (products·n of them)."""
    count, n = spec.row_count, spec.n
    if cheat is Cheat.LAZY:
        return np.zeros((count, n), dtype="<i4")
    if cheat is Cheat.LOW_PRECISION:
        return _per_product(spec, _float32_product)
    if cheat is Cheat.INT8_INPUTS:
        return _per_product(spec, int8_product)
    if cheat is Cheat.PARTIAL:
        return partial_rows(spec, rng)[0]
    rows = exact_rows(spec).copy()
    for i in rng.sample(range(count), max(1, round(count * SPARSE_ROW_FRACTION))):
        rows[i, rng.randrange(n)] += 1
    return rows


def _solution_of(spec: ChallengeSpec, rows: npt.NDArray[np.int32], started: float) -> Solution:
    tree = tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), rows)
    _ = tree.root
    return Solution(spec, Product(tree, lambda i: rows[i].tobytes()), time.perf_counter() - started)


def cheat_solution(cheat: Cheat, spec: ChallengeSpec, rng: random.Random) -> Solution:
    """A `Solution` committing to the cheat's rows, timed like an honest one."""
    started = time.perf_counter()
    return _solution_of(spec, cheat_rows(cheat, spec, rng), started)


def refusing_solution(spec: ChallengeSpec, rng: random.Random) -> tuple[Solution, frozenset[int]]:
    """What `MinerCheat.REFUSE_REVEAL` commits to (a partial product) and the rows it can
    answer; it refuses any reveal that `refuses`."""
    started = time.perf_counter()
    rows, computed = partial_rows(spec, rng)
    return _solution_of(spec, rows, started), computed
