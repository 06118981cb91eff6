"""Challenge profiles: which arithmetic the worker uses and the value bounds that keep it exact.

Entries of A are integers in [-a, a] and entries of B in [-b, b]. A sum of n products is bounded
by n·a·b, so when n·a·b is below the accumulator's exact-integer limit every partial sum, in any
summation order, is exact and every correct implementation yields the same bits. The result is
encoded as int32, so n·a·b must also stay below 2³¹.

The bounds must also keep a *cheaper* arithmetic from producing the same bits, or a worker is
credited with the profile's speed while paying for something cheaper. A tensor-core product
takes both operands in one format, so it is enough that one matrix (A) does not fit:

* ``cuda-f16`` (fp16 in, fp32 accumulate; fp16 holds integers to 2048). With one symmetric
  bound, n·v² < 2²⁴ forced v ≤ 127 from n = 1024 on, so int8 tensor cores (2× fp16) computed
  every challenge exactly. Now A takes the large bound (up to 2048) and B what is left of the
  2²⁴ budget (b = 1 from n = 4096). a ≥ 256 keeps more than half of A's entries beyond int8, so
  "int8 plus a sparse patch" saves nothing; splitting A into two int8 halves costs two int8
  products, i.e. one fp16 product on datacenter GPUs. fp8 e4m3 (integers to 16) needs three
  parts. fp16 accumulation fails: a result entry spreads far beyond 2048.
* ``cuda-i8`` (int8 in, int32 accumulate): a = b = 127; int4 (2× int8 on Ampere) holds 7.
* ``cpu-f64`` (float64 BLAS): a = b, the largest the int32 encoding allows. float32
  accumulation (2× cheaper) is exact while partial sums stay below 2²⁴; they spread like
  √n·a·b/3 = 2³¹/(3√n), so past n = 4096 float32 gets nearly every entry right (measured exact
  share: 0.72 at n=2048, 0.87 at 4096, 0.965 at 8192, 0.997 at 16384) and the profile refuses
  those sizes. Integer SIMD is *not* excluded and cannot be: int16 multiply-add with int32
  accumulation holds every value the int32 encoding allows, so cpu-f64 measures exact integer
  matmul throughput on a CPU, whatever instructions deliver it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from byteleap.proof.errors import InexactSizeError

#: Generation uses 16 random bits per entry, so a bound must leave 2v+1 ≤ 2¹⁶ outcomes.
GENERATOR_MAX_V = 32767
#: The largest n any profile accepts (a 2¹⁷-square int32 product is already 64 GiB).
MAX_N = 1 << 17
INT32_LIMIT = 1 << 31


class Profile(StrEnum):
    CPU_F64 = "cpu-f64"
    CUDA_F16 = "cuda-f16"
    CUDA_I8 = "cuda-i8"


@dataclass(frozen=True)
class StreamBounds:
    """Entries of A lie in [-a, a], entries of B in [-b, b]."""

    a: int
    b: int


@dataclass(frozen=True)
class ProfileRule:
    """Arithmetic limits of one profile."""

    accumulator_limit: int  # every integer of magnitude below this is exact in the accumulator
    input_max: int  # the largest magnitude the input format holds exactly
    a_min: int  # the smallest bound for A that keeps the cheaper format out
    cheaper_format: str
    symmetric: bool  # a = b (else A takes the largest bound and B the rest of the budget)
    n_max: int = MAX_N  # past this a cheaper arithmetic gets the same bits anyway


RULES: dict[Profile, ProfileRule] = {
    # float64 holds integers to 2^53; the int32 row encoding is the tighter limit.
    Profile.CPU_F64: ProfileRule(
        1 << 53, GENERATOR_MAX_V, 2, "float32 accumulation", symmetric=True, n_max=4096
    ),
    # fp16 inputs hold integers to 2048; tensor cores accumulate in fp32 (exact to 2^24).
    Profile.CUDA_F16: ProfileRule(1 << 24, 2048, 256, "int8", symmetric=False),
    # int8 inputs (symmetric, -128 unused), int32 accumulation.
    Profile.CUDA_I8: ProfileRule(INT32_LIMIT, 127, 8, "int4", symmetric=True),
}


def _budget(rule: ProfileRule) -> int:
    """The largest n·a·b the profile can hold exactly."""
    return min(rule.accumulator_limit, INT32_LIMIT) - 1


def _largest_bounds(rule: ProfileRule, n: int) -> StreamBounds:
    cap = min(rule.input_max, GENERATOR_MAX_V)
    if rule.symmetric:
        v = min(math.isqrt(_budget(rule) // n), cap)
        return StreamBounds(v, v)
    a = min(_budget(rule) // n, cap)
    return StreamBounds(a, min(_budget(rule) // (n * a), cap) if a else 0)


def value_bounds(profile: Profile, n: int) -> StreamBounds:
    """The bounds of A and B for an n×n challenge; refuse n the profile cannot make exact."""
    rule = RULES[profile]
    if not 1 <= n <= MAX_N:
        raise InexactSizeError(f"n={n} outside 1..{MAX_N}", n=n, profile=str(profile))
    if n > rule.n_max:
        raise InexactSizeError(
            f"{profile} refuses n={n} > {rule.n_max}: beyond it {rule.cheaper_format} "
            "gets nearly every entry right",
            n=n,
            profile=str(profile),
        )
    bounds = _largest_bounds(rule, n)
    if bounds.a < rule.a_min or bounds.b < 1:
        raise InexactSizeError(
            f"{profile} cannot make n={n} exact with values beyond {rule.cheaper_format} "
            f"(largest exact bounds a={bounds.a}, b={bounds.b}; a must reach {rule.a_min})",
            n=n,
            profile=str(profile),
        )
    return bounds


def max_n(profile: Profile) -> int:
    """The largest n ``profile`` accepts."""
    rule = RULES[profile]
    a = rule.a_min
    product = a * a if rule.symmetric else a  # b = a, or b = 1
    return min(MAX_N, rule.n_max, _budget(rule) // product)
