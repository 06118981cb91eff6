"""Value bounds: every partial sum exact, sizes refused where exactness is impossible, and no
cheaper arithmetic holds the inputs of a GPU profile."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.proof import InexactSizeError, Profile, full_a, full_b, max_n, value_bounds
from byteleap.proof.profiles import GENERATOR_MAX_V, INT32_LIMIT, MAX_N, RULES

SEED = bytes(range(32))
INT8_MAX = 127
FP16_EXACT_MAX = 2048
FP8_E4M3_EXACT_MAX = 16
INT4_MAX = 7


@pytest.mark.parametrize("profile", list(Profile))
@given(n=st.integers(min_value=1, max_value=MAX_N))
def test_bounds_keep_every_partial_sum_exact_or_refuse(profile: Profile, n: int) -> None:
    rule = RULES[profile]
    try:
        bounds = value_bounds(profile, n)
    except InexactSizeError:
        assert n > max_n(profile)
        return
    assert n <= max_n(profile)
    a, b = bounds.a, bounds.b
    assert n * a * b < rule.accumulator_limit
    assert n * a * b < INT32_LIMIT
    assert rule.a_min <= a <= min(rule.input_max, GENERATOR_MAX_V)
    assert 1 <= b <= a
    if rule.symmetric:
        assert a == b
        # v is the largest such bound (or capped by the input format).
        assert a == rule.input_max or n * (a + 1) ** 2 >= min(rule.accumulator_limit, INT32_LIMIT)
    else:
        # A takes the largest bound, B what is left of the budget.
        assert a == rule.input_max or n * (a + 1) >= rule.accumulator_limit
        assert n * a * (b + 1) >= rule.accumulator_limit or b == rule.input_max


FP16_SIZES = [1, 2, 64, 512, 1024, 2048, 4096, 8192, 32768, max_n(Profile.CUDA_F16)]


@pytest.mark.parametrize("n", FP16_SIZES)
def test_fp16_inputs_need_more_than_int8_and_stay_exact_in_fp16(n: int) -> None:
    """The int8 gap: A's values exceed int8 (most of them: a ≥ 256) and fp16 holds them."""
    bounds = value_bounds(Profile.CUDA_F16, n)
    assert 2 * (INT8_MAX + 1) <= bounds.a <= FP16_EXACT_MAX
    values = np.arange(-bounds.a, bounds.a + 1, dtype=np.float64)
    assert (values.astype(np.float16).astype(np.float64) == values).all()
    assert (np.abs(values) > INT8_MAX).mean() > 0.5
    assert (np.abs(values) > FP8_E4M3_EXACT_MAX).mean() > 0.9


def test_int8_profile_values_exceed_int4() -> None:
    for n in (64, 4096, 65536, MAX_N):
        assert value_bounds(Profile.CUDA_I8, n).a == INT8_MAX > INT4_MAX


def test_sizes_beyond_exactness_are_refused() -> None:
    with pytest.raises(InexactSizeError):
        value_bounds(Profile.CUDA_F16, 65536)  # a ≤ 255: half of A would fit int8
    with pytest.raises(InexactSizeError):
        value_bounds(Profile.CPU_F64, 0)
    with pytest.raises(InexactSizeError):
        value_bounds(Profile.CPU_F64, 8192)  # float32 accumulation gets most entries right
    assert value_bounds(Profile.CUDA_F16, max_n(Profile.CUDA_F16)).a == 2 * (INT8_MAX + 1)
    with pytest.raises(InexactSizeError):
        value_bounds(Profile.CUDA_F16, max_n(Profile.CUDA_F16) + 1)
    assert max_n(Profile.CPU_F64) == 4096
    assert max_n(Profile.CUDA_I8) == MAX_N


@pytest.mark.parametrize("profile", list(Profile))
def test_worst_case_product_is_exact_in_the_accumulator(profile: Profile) -> None:
    """All-a times all-(-b) inputs reach the bound n·a·b; the accumulator holds it exactly."""
    n = 4096
    bounds = value_bounds(profile, n)
    a = np.full((2, n), bounds.a, dtype=np.float64)
    b = np.full((n, 2), -bounds.b, dtype=np.float64)
    exact = -n * bounds.a * bounds.b
    if profile is Profile.CUDA_F16:
        # Sequential fp32 accumulation of fp16 products: every partial sum must be exact.
        products = a[0].astype(np.float16).astype(np.float32) * b[:, 0].astype(np.float16)
        partial = np.cumsum(products, dtype=np.float32)
        assert (partial == -bounds.a * bounds.b * np.arange(1, n + 1)).all()
        assert int(partial[-1]) == exact
    assert (a @ b == exact).all()
    assert np.int32(exact) == exact


@pytest.mark.parametrize("profile", list(Profile))
def test_generated_values_stay_within_bound(profile: Profile) -> None:
    n = 300
    bounds = value_bounds(profile, n)
    for matrix, v in ((full_a(SEED, n, profile), bounds.a), (full_b(SEED, n, profile), bounds.b)):
        assert matrix.min() >= -v and matrix.max() <= v
        assert (matrix == np.round(matrix)).all()
        assert matrix.min() == -v and matrix.max() == v  # the whole range is reachable
