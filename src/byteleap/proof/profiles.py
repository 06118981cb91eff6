"""Challenge profiles: which arithmetic the worker uses and the value bound that keeps it exact.

Entries of A and B are integers in [-v, v]. A sum of n products is bounded by n·v², so when
n·v² is below the accumulator's exact-integer limit every partial sum, in any summation order,
is exact and every correct implementation yields the same bits. The result is encoded as int32,
so n·v² must also stay below 2³¹. Each profile also has a floor on v so that a cheaper input
format cannot hold the inputs (fp8 e4m3 holds every integer only up to 16, int4 up to 7).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from byteleap.proof.errors import InexactSizeError

#: Generation uses 16 random bits per entry, so v must leave 2v+1 ≤ 2¹⁶ outcomes.
GENERATOR_MAX_V = 32767
#: The largest n any profile accepts (a 2¹⁷-square int32 product is already 64 GiB).
MAX_N = 1 << 17
INT32_LIMIT = 1 << 31


class Profile(StrEnum):
    CPU_F64 = "cpu-f64"
    CUDA_F16 = "cuda-f16"
    CUDA_I8 = "cuda-i8"


@dataclass(frozen=True)
class ProfileRule:
    """Arithmetic limits of one profile."""

    accumulator_limit: int  # every integer of magnitude below this is exact in the accumulator
    input_max: int  # the largest magnitude the input format holds exactly
    cheaper_format_max: int  # v must exceed this so the next cheaper format cannot hold inputs
    cheaper_format: str


RULES: dict[Profile, ProfileRule] = {
    # float64 holds integers to 2^53; the int32 row encoding is the tighter limit.
    Profile.CPU_F64: ProfileRule(1 << 53, GENERATOR_MAX_V, 1, "float32 accumulation"),
    # fp16 inputs hold integers to 2048; tensor cores accumulate in fp32 (exact to 2^24).
    Profile.CUDA_F16: ProfileRule(1 << 24, 2048, 16, "fp8 e4m3"),
    # int8 inputs (symmetric, -128 unused), int32 accumulation.
    Profile.CUDA_I8: ProfileRule(INT32_LIMIT, 127, 7, "int4"),
}


def value_bound(profile: Profile, n: int) -> int:
    """The largest v with n·v² below every limit of ``profile``; refuse n it cannot make exact."""
    if not 1 <= n <= MAX_N:
        raise InexactSizeError(f"n={n} outside 1..{MAX_N}", n=n, profile=str(profile))
    rule = RULES[profile]
    limit = min(rule.accumulator_limit, INT32_LIMIT)
    v = math.isqrt((limit - 1) // n)
    v = min(v, rule.input_max, GENERATOR_MAX_V)
    if v <= rule.cheaper_format_max:
        raise InexactSizeError(
            f"{profile} cannot make n={n} exact with values beyond {rule.cheaper_format} "
            f"(largest exact bound v={v} ≤ {rule.cheaper_format_max})",
            n=n,
            profile=str(profile),
        )
    return v


def max_n(profile: Profile) -> int:
    """The largest n ``profile`` accepts."""
    rule = RULES[profile]
    limit = min(rule.accumulator_limit, INT32_LIMIT)
    v = rule.cheaper_format_max + 1
    return min(MAX_N, (limit - 1) // (v * v))
