"""Challenge sizing: n and the number of products from the GPU model and memory a worker claims.

Two aims, for one claimed (throughput, memory):

* Time: the expected solve time is about ``target_s`` on every model, so an honest mixed
  fleet finishes together and one deadline rule (``deadline_s``) fits all of it.
* Residency: an honest solver holds at least ``resident_fraction`` of the claimed memory at
  once, so a card cannot keep a second worker's challenge beside its own. Every backend
  allocates all operands and results of all products before the first multiply, so the
  working set is their sum.

Both depend on n and the number of products p: the work is 2·p·n³ and the memory p·n²·w, so
at a fixed working set the time grows with n (time = 2·n·memory / (w·flops)). A fast card with
little memory needs a small n and several products; a slow card with much memory needs the
largest n, which the profile's exactness bound caps (``profiles.max_n``). This is why a
challenge may hold several independent products.

Bytes per product (w·n²), the CUDA path's peak (``cuda_backend``): A and Bᵀ in the profile's
input format (fp16: 2 bytes, int8: 1, float64: 8) and the result in 4 bytes (int32, or the
float32 accumulator of an fp16 product). The row hashing needs n²/8 bytes per product for its
chunk chaining values and 64 bytes per row for the tree, but only after A and B are freed, so
it never adds to the peak. The CUDA context and cuBLAS workspace (a few hundred MB) lie
outside the working set: ``max_fraction`` leaves room for them. (The numpy backend holds the
result in float64 and then encodes it: a CPU worker's memory is not what this sizes.)

What residency does not prove: the products are independent and a revealed row costs n²
multiply-adds to recompute, so a dishonest solver may compute the products one after another
in a fraction of the memory and still answer in time. Against that, time is the guard: two
challenges on one card take twice the expected time and miss ``deadline_s``. Memory becomes
provable only if the reveal must come faster than recomputation, e.g. products chained so
that product j+1's operands derive from product j's result (a protocol change, not made here).

This module is pure: no torch, no device queries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from byteleap.proof.errors import InexactSizeError
from byteleap.proof.messages import MAX_PRODUCTS
from byteleap.proof.profiles import Profile, max_n, value_bounds

#: Bytes of one input entry (A, B) in each profile's arithmetic.
INPUT_BYTES: dict[Profile, int] = {Profile.CUDA_F16: 2, Profile.CUDA_I8: 1, Profile.CPU_F64: 8}
#: Bytes of one result entry while the challenge is solved (int32, or fp16's float32 sums).
RESULT_BYTES = 4
#: n is a multiple of this: whole 1 KiB hash chunks per row, tensor-core tiles without a
#: ragged edge, and the sizes ``torch._int_mm`` accepts.
N_ALIGN = 256
#: The working set stays below this share of the claimed memory: the CUDA context, cuBLAS's
#: workspace and the allocator's rounding need the rest.
MAX_FRACTION = 0.9
#: The default residency: above one half, so two challenges cannot share one card.
RESIDENT_FRACTION = 0.75
#: The deadline over the expected time. A card's sustained throughput moves with its clocks:
#: boost against base clock (≈1.25× on an H100 SXM), power and thermal throttling (10–20%),
#: and the claimed rate is a model's typical one, not this card's. 1.5 lets a card run at 2/3
#: of its model's rate. It must stay well below 2: a card half as fast as it claims, or one
#: card solving two workers' challenges in turn, takes 2× the expected time and misses the
#: deadline by a third even with this slack.
DEADLINE_SLACK = 1.5


@dataclass(frozen=True)
class ChallengeSize:
    """A sized challenge: ``products`` n×n products; pass n and products to
    ``issue_challenge``."""

    n: int
    products: int
    work_flops: int  # 2·products·n³
    working_set_bytes: int  # products·n²·(2·input bytes + 4)
    expected_s: float  # work_flops / the claimed throughput


def bytes_per_product(profile: Profile, n: int) -> int:
    """A, Bᵀ and the result of one n×n product, as the CUDA path holds them."""
    return n * n * (2 * INPUT_BYTES[profile] + RESULT_BYTES)


def working_set_bytes(profile: Profile, n: int, products: int) -> int:
    return products * bytes_per_product(profile, n)


def _exact_sizes(profile: Profile) -> list[int]:
    """Every multiple of N_ALIGN the profile makes exact."""
    sizes = []
    for n in range(N_ALIGN, max_n(profile) + 1, N_ALIGN):
        try:
            value_bounds(profile, n)
        except InexactSizeError:
            continue
        sizes.append(n)
    return sizes


_SIZES: dict[Profile, list[int]] = {profile: _exact_sizes(profile) for profile in Profile}


def _check(device_flops: float, memory_bytes: int, resident: float, cap: float) -> None:
    if not (math.isfinite(device_flops) and device_flops > 0):
        raise ValueError(f"device_flops must be positive, got {device_flops}")
    if memory_bytes <= 0:
        raise ValueError(f"memory_bytes must be positive, got {memory_bytes}")
    if not 0.0 <= resident <= cap <= 1.0:
        raise ValueError(f"need 0 ≤ resident_fraction ≤ max_fraction ≤ 1, got {resident} and {cap}")


def _product_range(profile: Profile, n: int, low: float, high: float) -> tuple[int, int]:
    """The product counts whose working set lies in [low, high] (empty when first > second)."""
    per = bytes_per_product(profile, n)
    return max(1, math.ceil(low / per)), min(MAX_PRODUCTS, math.floor(high / per))


def size_challenge(
    profile: Profile,
    *,
    device_flops: float,
    memory_bytes: int,
    target_s: float,
    resident_fraction: float = RESIDENT_FRACTION,
    max_fraction: float = MAX_FRACTION,
) -> ChallengeSize:
    """n and products for a card claiming ``device_flops`` (its model's expected challenge
    throughput, flop/s of the whole solve) and ``memory_bytes`` of memory.

    Among the sizes whose working set lies in [resident_fraction, max_fraction]·memory, the
    one whose expected time is nearest ``target_s`` (by ratio). When none is near, memory
    wins: the working set stays in that window and the time goes where it must, because
    residency is what makes the claimed memory true and a deadline cannot restore it (a
    challenge that fits in half the card lets the card serve two workers). ``time_range``
    says which targets a card can meet. Only where no size fits the window at all (memory
    below one product of n = N_ALIGN, or beyond MAX_PRODUCTS of the largest n) is the
    working set the one nearest the window, never above max_fraction when any size fits.

    Pass resident_fraction=0 to size by time alone (a CPU worker, whose memory is not
    claimed hardware).
    """
    _check(device_flops, memory_bytes, resident_fraction, max_fraction)
    if not (math.isfinite(target_s) and target_s > 0):
        raise ValueError(f"target_s must be positive, got {target_s}")
    low, high = resident_fraction * memory_bytes, max_fraction * memory_bytes
    best: tuple[tuple[float, ...], int, int] | None = None
    for n in _SIZES[profile]:
        first, last = _product_range(profile, n, low, high)
        ideal = target_s * device_flops / (2 * n**3)
        candidates = {1, MAX_PRODUCTS, first, last, math.floor(ideal), math.ceil(ideal)}
        if first <= last:
            candidates |= {min(max(p, first), last) for p in (math.floor(ideal), math.ceil(ideal))}
        for products in candidates:
            if not 1 <= products <= MAX_PRODUCTS:
                continue
            ws = working_set_bytes(profile, n, products)
            expected = 2 * products * n**3 / device_flops
            key = (
                max(0.0, math.log(ws / high)),  # above the window: an honest card may not fit
                max(0.0, math.log(low / ws)) if low > 0 else 0.0,  # below: not resident
                abs(math.log(expected / target_s)),
                -ws,
            )
            if best is None or key < best[0]:
                best = (key, n, products)
    assert best is not None  # every profile accepts n = N_ALIGN
    _, n, products = best
    return ChallengeSize(
        n=n,
        products=products,
        work_flops=2 * products * n**3,
        working_set_bytes=working_set_bytes(profile, n, products),
        expected_s=2 * products * n**3 / device_flops,
    )


def time_range(
    profile: Profile,
    *,
    device_flops: float,
    memory_bytes: int,
    resident_fraction: float = RESIDENT_FRACTION,
    max_fraction: float = MAX_FRACTION,
) -> tuple[float, float] | None:
    """The shortest and longest expected times of a size whose working set lies in the
    window, or None when no size does. A fleet-wide ``target_s`` inside every claimed model's
    range is met by all of them."""
    _check(device_flops, memory_bytes, resident_fraction, max_fraction)
    low, high = resident_fraction * memory_bytes, max_fraction * memory_bytes
    shortest, longest = math.inf, 0.0
    for n in _SIZES[profile]:
        first, last = _product_range(profile, n, low, high)
        if first <= last:
            shortest = min(shortest, 2 * first * n**3 / device_flops)
            longest = max(longest, 2 * last * n**3 / device_flops)
    return None if longest == 0.0 else (shortest, longest)


def deadline_s(size: ChallengeSize) -> float:
    """Seconds from issue to the commitment's deadline, network time not included."""
    return size.expected_s * DEADLINE_SLACK
