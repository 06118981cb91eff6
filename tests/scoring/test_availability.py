from __future__ import annotations

import numpy as np
import pytest

from byteleap.scoring import (
    ScoringError,
    ScoringParams,
    availability_fractions,
    bucket_index,
    online_bucket_counts,
)

P = ScoringParams()
FULL = P.availability_buckets


def avail(online: int, changes: int, params: ScoringParams = P) -> float:
    got = availability_fractions(np.array([online]), np.array([changes]), params)
    return float(got[0])


@pytest.mark.parametrize(
    ("changes", "expected"),
    [(0, 1.0), (1, 0.5), (2, 0.25), (3, 0.0), (4, 0.0), (50, 0.0)],
)
def test_ip_changes_halve_then_zero(changes: int, expected: float) -> None:
    assert avail(FULL, changes) == expected


def test_zeroing_threshold_is_a_param() -> None:
    params = ScoringParams(ip_changes_to_zero=5)
    assert avail(FULL, 4, params) == 0.5**4
    assert avail(FULL, 5, params) == 0.0


@pytest.mark.parametrize(
    ("online", "expected"),
    [(0, 0.0), (FULL // 2, (FULL // 2) / FULL), (FULL, 1.0), (FULL + 3, 1.0)],
)
def test_fraction_of_buckets_online(online: int, expected: float) -> None:
    assert avail(online, 0) == pytest.approx(expected)


def test_half_online_with_one_change() -> None:
    assert avail(FULL // 2, 1) == pytest.approx(0.25)


def test_counts_from_a_bucket_matrix() -> None:
    online = np.zeros((3, FULL), dtype=np.bool_)
    online[1, ::2] = True
    online[2] = True
    assert online_bucket_counts(online).tolist() == [0, FULL // 2, FULL]
    with pytest.raises(ScoringError):
        online_bucket_counts(np.ones(4, dtype=np.bool_))


def test_refuses_bad_counts() -> None:
    with pytest.raises(ScoringError):
        availability_fractions(np.array([-1]), np.array([0]), P)
    with pytest.raises(ScoringError):
        availability_fractions(np.array([1, 2]), np.array([0]), P)


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (0.0, FULL - 1),
        (299.0, FULL - 1),
        (300.0, FULL - 2),
        (FULL * 300.0 - 1, 0),
        (FULL * 300.0, -1),
        (-1.0, -1),
    ],
)
def test_bucket_index(age: float, expected: int) -> None:
    assert bucket_index(1e6 - age, now=1e6, params=P) == expected
