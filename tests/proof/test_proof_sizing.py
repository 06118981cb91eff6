"""Challenge sizing: residency of the claimed memory, exact sizes, and one expected time across
GPU models whose throughput and memory differ. The model constants are this test's own."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byteleap.proof import Profile, max_n, value_bounds
from byteleap.proof.messages import MAX_PRODUCTS
from byteleap.proof.sizing import (
    DEADLINE_SLACK,
    INPUT_BYTES,
    MAX_FRACTION,
    N_ALIGN,
    RESIDENT_FRACTION,
    ChallengeSize,
    deadline_s,
    size_challenge,
    time_range,
    working_set_bytes,
)

GB = 10**9
# (effective challenge throughput in flop/s, memory in bytes): ratios of flops to memory
# spread over 4× (the fast card with much memory, the slow one with as much as a fast one).
MODELS = {
    "h100-80": (4e14, 80 * GB),
    "a100-40": (2e14, 40 * GB),
    "rtx4090-24": (1.3e14, 24 * GB),
    "rtx3090-24": (6e13, 24 * GB),
}
GPU_PROFILES = [Profile.CUDA_F16, Profile.CUDA_I8]
#: Every model's expected time lies within this factor of a target all of them can meet.
TIME_BAND = 1.05
#: Any card meets a target within its own reach to this factor (n moves in steps of N_ALIGN;
#: measured worst over 4000 random cards: 1.07, at 2 GB).
REACH_BAND = 1.15

flops = st.floats(min_value=1e12, max_value=3e15)
memory = st.integers(min_value=2 * GB, max_value=300 * GB)
targets = st.floats(min_value=0.05, max_value=60.0)
profiles = st.sampled_from(GPU_PROFILES)


def _sized(profile: Profile, flop_s: float, mem: int, target: float) -> ChallengeSize:
    return size_challenge(profile, device_flops=flop_s, memory_bytes=mem, target_s=target)


@settings(max_examples=150, deadline=None)
@given(profiles, flops, memory, targets)
def test_working_set_holds_the_claimed_memory_whenever_a_size_can(
    profile: Profile, flop_s: float, mem: int, target: float
) -> None:
    size = _sized(profile, flop_s, mem, target)
    if time_range(profile, device_flops=flop_s, memory_bytes=mem) is not None:
        assert RESIDENT_FRACTION * mem <= size.working_set_bytes <= MAX_FRACTION * mem
        # Two challenges cannot share the card.
        assert 2 * size.working_set_bytes > mem


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(list(Profile)), flops, st.integers(1, 10**15), targets)
def test_every_size_is_exact_and_consistent(
    profile: Profile, flop_s: float, mem: int, target: float
) -> None:
    size = _sized(profile, flop_s, mem, target)
    bounds = value_bounds(profile, size.n)  # raises for an n the profile cannot make exact
    assert size.n * bounds.a * bounds.b < 2**31
    assert size.n <= max_n(profile) and size.n % N_ALIGN == 0
    assert 1 <= size.products <= MAX_PRODUCTS
    assert size.work_flops == 2 * size.products * size.n**3
    assert size.working_set_bytes == size.products * size.n**2 * (2 * INPUT_BYTES[profile] + 4)
    assert size.expected_s == pytest.approx(size.work_flops / flop_s)


def _common_range(profile: Profile) -> tuple[float, float]:
    ranges = [time_range(profile, device_flops=f, memory_bytes=m) for f, m in MODELS.values()]
    assert all(r is not None for r in ranges)
    return max(r[0] for r in ranges if r), min(r[1] for r in ranges if r)


@pytest.mark.parametrize("profile", GPU_PROFILES)
def test_the_models_share_a_range_of_targets(profile: Profile) -> None:
    shortest, longest = _common_range(profile)
    assert longest > 2 * shortest  # a real choice of targets, not one point


@settings(max_examples=60, deadline=None)
@given(profiles, st.floats(min_value=0.0, max_value=1.0))
def test_every_model_takes_about_the_target_time(profile: Profile, where: float) -> None:
    shortest, longest = _common_range(profile)
    target = shortest * (longest / shortest) ** where
    for name, (flop_s, mem) in MODELS.items():
        size = _sized(profile, flop_s, mem, target)
        assert 1 / TIME_BAND <= size.expected_s / target <= TIME_BAND, name
        assert size.working_set_bytes >= RESIDENT_FRACTION * mem, name


def test_models_need_different_shapes() -> None:
    """The fast card with much memory and the slow one cannot share one n: products differ."""
    shortest, longest = _common_range(Profile.CUDA_F16)
    target = math.sqrt(shortest * longest)
    shapes = {
        (s.n, s.products)
        for s in (_sized(Profile.CUDA_F16, f, m, target) for f, m in MODELS.values())
    }
    assert len({products for _, products in shapes}) > 1


@settings(max_examples=80, deadline=None)
@given(profiles, flops, memory, targets)
def test_memory_wins_over_time(profile: Profile, flop_s: float, mem: int, target: float) -> None:
    """A target out of the card's reach moves the time, never the working set out of the
    window; inside the reach the time is met."""
    span = time_range(profile, device_flops=flop_s, memory_bytes=mem)
    size = _sized(profile, flop_s, mem, target)
    if span is None:
        return
    shortest, longest = span
    if target < shortest:
        assert size.expected_s == pytest.approx(shortest)
    elif target > longest:
        assert size.expected_s == pytest.approx(longest)
    else:
        assert 1 / REACH_BAND <= size.expected_s / target <= REACH_BAND


def test_without_residency_time_alone_decides() -> None:
    """resident_fraction=0 (a CPU worker): a target shorter than residency allows is met."""
    span = time_range(Profile.CUDA_F16, device_flops=4e14, memory_bytes=80 * GB)
    assert span is not None and span[0] > 0.1
    size = size_challenge(
        Profile.CUDA_F16,
        device_flops=4e14,
        memory_bytes=80 * GB,
        target_s=0.1,
        resident_fraction=0.0,
    )
    assert size.expected_s == pytest.approx(0.1, rel=0.05)
    assert size.working_set_bytes < RESIDENT_FRACTION * 80 * GB


def test_a_memory_below_one_product_gets_the_smallest_size() -> None:
    size = _sized(Profile.CUDA_F16, 1e14, 100_000, 1.0)
    assert (size.n, size.products) == (N_ALIGN, 1)


def test_a_memory_beyond_every_size_gets_the_largest_that_fits() -> None:
    size = _sized(Profile.CUDA_F16, 1e14, 10**16, 1.0)
    top = max(n for n in range(N_ALIGN, max_n(Profile.CUDA_F16) + 1, N_ALIGN))
    assert (size.n, size.products) == (top, MAX_PRODUCTS)
    assert size.working_set_bytes == working_set_bytes(Profile.CUDA_F16, top, MAX_PRODUCTS)


@given(profiles, flops, memory, targets)
def test_the_deadline_catches_half_speed(
    profile: Profile, flop_s: float, mem: int, target: float
) -> None:
    """A card half as fast as claimed, or one card solving two challenges in turn, takes 2×."""
    size = _sized(profile, flop_s, mem, target)
    assert size.expected_s < deadline_s(size) < 2 * size.expected_s
    assert deadline_s(size) == pytest.approx(DEADLINE_SLACK * size.expected_s)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"device_flops": 0.0},
        {"device_flops": math.inf},
        {"memory_bytes": 0},
        {"target_s": 0.0},
        {"target_s": math.nan},
        {"resident_fraction": 0.95},
        {"max_fraction": 1.5},
        {"resident_fraction": -0.1},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, float]) -> None:
    args: dict[str, float] = {"device_flops": 1e14, "memory_bytes": 24 * GB, "target_s": 1.0}
    with pytest.raises(ValueError):
        size_challenge(Profile.CUDA_F16, **(args | kwargs))  # type: ignore[arg-type]
