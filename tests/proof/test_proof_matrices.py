"""Counter-based generation: rows and columns alone equal slices of the full matrices."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byteleap.proof import Profile, cols_of_b, full_a, full_b, full_b_columns, rows_of_a


@settings(max_examples=25, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32),
    n=st.integers(min_value=1, max_value=70),
    profile=st.sampled_from(list(Profile)),
    data=st.data(),
)
def test_single_rows_and_columns_match_full_matrices(
    seed: bytes, n: int, profile: Profile, data: st.DataObject
) -> None:
    indices = data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=5))
    a, b = full_a(seed, n, profile), full_b(seed, n, profile)
    assert (rows_of_a(seed, n, profile, indices) == a[indices]).all()
    assert (cols_of_b(seed, n, profile, indices) == b[:, indices].T).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_full_generation_matches_single_slices(threads: int) -> None:
    seed = os.urandom(32)
    n = 1500  # n² is above the two-thread threshold and spans several Philox chunks
    a = full_a(seed, n, Profile.CPU_F64, threads=threads)
    b_columns = full_b_columns(seed, n, Profile.CPU_F64, threads=threads)
    picks = [0, 1, n // 2, n // 2 + 1, n - 1]
    assert (rows_of_a(seed, n, Profile.CPU_F64, picks) == a[picks]).all()
    assert (cols_of_b(seed, n, Profile.CPU_F64, picks) == b_columns[picks]).all()


def test_every_seed_bit_matters() -> None:
    seed = bytearray(os.urandom(32))
    base = rows_of_a(bytes(seed), 64, Profile.CPU_F64, [3])
    for byte in (0, 8, 16, 24, 31):
        flipped = bytearray(seed)
        flipped[byte] ^= 1
        assert (rows_of_a(bytes(flipped), 64, Profile.CPU_F64, [3]) != base).any()


def test_a_and_b_are_different_streams() -> None:
    seed = os.urandom(32)
    assert (
        rows_of_a(seed, 64, Profile.CPU_F64, [0]) != cols_of_b(seed, 64, Profile.CPU_F64, [0])
    ).any()


def test_out_of_range_index_and_bad_seed_are_refused() -> None:
    with pytest.raises(IndexError):
        rows_of_a(os.urandom(32), 8, Profile.CPU_F64, [8])
    with pytest.raises(ValueError):
        rows_of_a(os.urandom(16), 8, Profile.CPU_F64, [0])


def test_values_look_uniform() -> None:
    a = full_a(os.urandom(32), 512, Profile.CUDA_I8)
    counts = np.bincount((a.ravel() + 127).astype(np.int64), minlength=255)
    expected = a.size / 255
    assert np.abs(counts - expected).max() < 6 * expected**0.5
