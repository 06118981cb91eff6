"""How each known cheat computes its "product": for the network simulation, the devnet's
``--cheaters`` and adversarial tests. Every one of them must fail `verify` (sparse errors
only when a sampled entry hits one: that is what the ban after a caught wrong answer is for).
"""

from __future__ import annotations

import random
import time
from enum import StrEnum

import numpy as np
import numpy.typing as npt

from byteleap.proof.backends import Product, encode_rows, tree_of_rows
from byteleap.proof.challenge import Solution
from byteleap.proof.matrices import full_a, full_b
from byteleap.proof.merkle import TreeKeys
from byteleap.proof.messages import ChallengeSpec

PARTIAL_FRACTION = 0.5  # share of rows a partial cheat really computes
SPARSE_ROW_FRACTION = 0.1  # share of rows a sparse cheat gets one entry wrong in


class Cheat(StrEnum):
    LAZY = "lazy"  # commits to zeros, computes nothing
    PARTIAL = "partial-compute"  # computes half the rows
    LOW_PRECISION = "low-precision"  # multiplies in float32: fast, inexact past 2^24
    SPARSE_ERROR = "sparse-error"  # one entry off by one in a tenth of the rows
    INT8_INPUTS = "int8-inputs"  # int8 tensor-core arithmetic (2× fp16), inputs saturated


def exact_rows(spec: ChallengeSpec) -> npt.NDArray[np.int32]:
    return encode_rows(
        full_a(spec.seed, spec.n, spec.profile) @ full_b(spec.seed, spec.n, spec.profile)
    )


def int8_product(a: npt.NDArray[np.float64], b: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
    """What int8 inputs with int32 accumulation give: exact whenever every entry fits int8."""
    # float64 BLAS on saturated values is bit-identical to an int8 product (|sums| < 2^53).
    return encode_rows(np.clip(a, -128, 127) @ np.clip(b, -128, 127))


def cheat_rows(cheat: Cheat, spec: ChallengeSpec, rng: random.Random) -> npt.NDArray[np.int32]:
    """The rows ``cheat`` would commit to for ``spec``."""
    n = spec.n
    if cheat is Cheat.LAZY:
        return np.zeros((n, n), dtype="<i4")
    if cheat is Cheat.LOW_PRECISION:
        a = full_a(spec.seed, n, spec.profile).astype(np.float32)
        b = full_b(spec.seed, n, spec.profile).astype(np.float32)
        return encode_rows((a @ b).astype(np.float64))
    if cheat is Cheat.INT8_INPUTS:
        return int8_product(full_a(spec.seed, n, spec.profile), full_b(spec.seed, n, spec.profile))
    rows = exact_rows(spec).copy()
    if cheat is Cheat.PARTIAL:
        skipped = rng.sample(range(n), n - round(n * PARTIAL_FRACTION))
        rows[skipped] = 0
    else:
        for i in rng.sample(range(n), max(1, round(n * SPARSE_ROW_FRACTION))):
            rows[i, rng.randrange(n)] += 1
    return rows


def cheat_solution(cheat: Cheat, spec: ChallengeSpec, rng: random.Random) -> Solution:
    """A `Solution` committing to the cheat's rows, timed like an honest one."""
    started = time.perf_counter()
    rows = cheat_rows(cheat, spec, rng)
    tree = tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), rows)
    _ = tree.root
    return Solution(spec, Product(tree, lambda i: rows[i].tobytes()), time.perf_counter() - started)
