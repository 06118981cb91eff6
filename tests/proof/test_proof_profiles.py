"""Value bounds: every partial sum exact, sizes refused where exactness is impossible."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.proof import InexactSizeError, Profile, full_a, full_b, max_n, value_bound
from byteleap.proof.profiles import INT32_LIMIT, RULES

SEED = bytes(range(32))


@pytest.mark.parametrize("profile", list(Profile))
@given(n=st.integers(min_value=1, max_value=1 << 17))
def test_bound_keeps_every_partial_sum_exact_or_refuses(profile: Profile, n: int) -> None:
    rule = RULES[profile]
    try:
        v = value_bound(profile, n)
    except InexactSizeError:
        # Refused: the best exact v would not exceed the cheaper format.
        best = int(((min(rule.accumulator_limit, INT32_LIMIT) - 1) // n) ** 0.5)
        assert min(best, rule.input_max) <= rule.cheaper_format_max + 1
        return
    assert n * v * v < rule.accumulator_limit
    assert n * v * v < INT32_LIMIT
    assert rule.cheaper_format_max < v <= rule.input_max
    # v is the largest such bound (or capped by the input format).
    assert v == rule.input_max or n * (v + 1) ** 2 >= min(rule.accumulator_limit, INT32_LIMIT)


def test_fp16_values_exceed_fp8_and_fit_fp16() -> None:
    v = value_bound(Profile.CUDA_F16, 32768)
    assert v > 16
    values = np.arange(-v, v + 1, dtype=np.float64)
    assert (values.astype(np.float16).astype(np.float64) == values).all()


def test_sizes_beyond_exactness_are_refused() -> None:
    with pytest.raises(InexactSizeError):
        value_bound(Profile.CUDA_F16, 65536)  # v ≤ 15 would fit fp8 e4m3
    with pytest.raises(InexactSizeError):
        value_bound(Profile.CPU_F64, 0)
    assert value_bound(Profile.CUDA_F16, max_n(Profile.CUDA_F16)) == 17
    with pytest.raises(InexactSizeError):
        value_bound(Profile.CUDA_F16, max_n(Profile.CUDA_F16) + 1)


@pytest.mark.parametrize("profile", list(Profile))
def test_worst_case_product_is_exact_in_the_accumulator(profile: Profile) -> None:
    """All-±v inputs reach the bound n·v²; the profile's accumulator holds it exactly."""
    n = 4096
    v = value_bound(profile, n)
    a = np.full((2, n), v, dtype=np.float64)
    b = np.full((n, 2), -v, dtype=np.float64)
    exact = -n * v * v
    if profile is Profile.CUDA_F16:
        acc = np.float32(0)
        for x, y in zip(a[0].astype(np.float16), b[:, 0].astype(np.float16), strict=True):
            acc = np.float32(acc + np.float32(x) * np.float32(y))
        assert int(acc) == exact
    assert (a @ b == exact).all()
    assert np.int32(exact) == exact


@pytest.mark.parametrize("profile", list(Profile))
def test_generated_values_stay_within_bound(profile: Profile) -> None:
    n = 300
    v = value_bound(profile, n)
    for matrix in (full_a(SEED, n, profile), full_b(SEED, n, profile)):
        assert matrix.min() >= -v and matrix.max() <= v
        assert (matrix == np.round(matrix)).all()
        assert matrix.min() == -v and matrix.max() == v  # the whole range is reachable
