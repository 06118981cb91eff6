"""Availability: the share of 5-minute buckets a worker was online over the last 169 h,
halved for each IP change in that span and zero from ``ip_changes_to_zero`` changes on.

Buckets are taken as counts or a boolean matrix (workers × buckets); never a Python loop over
buckets, since 25,600 workers × 2,028 buckets is 52 million flags. A worker with no availability
data counts as never online. Counts above the window's bucket total are capped at 1.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from byteleap.scoring.errors import ScoringError
from byteleap.scoring.params import ScoringParams

__all__ = ["availability_fractions", "bucket_index", "online_bucket_counts"]


def bucket_index(at: float, *, now: float, params: ScoringParams) -> int:
    """Which bucket ``at`` falls in, 0 = the oldest of the window; -1 outside the window."""
    age = now - at
    n = params.availability_buckets
    if age < 0 or age >= n * params.bucket_s:
        return -1
    return n - 1 - int(age // params.bucket_s)


def online_bucket_counts(online: NDArray[np.bool_]) -> NDArray[np.int64]:
    """Per worker (row), how many buckets (columns) were online."""
    if online.ndim != 2:
        raise ScoringError("online buckets must be a workers × buckets matrix", reason="shape")
    counts: NDArray[np.int64] = np.count_nonzero(online, axis=1).astype(np.int64)
    return counts


def availability_fractions(
    online_buckets: NDArray[np.int64], ip_changes: NDArray[np.int64], params: ScoringParams
) -> NDArray[np.float64]:
    """Availability per worker from online-bucket counts and IP-change counts in the window."""
    if online_buckets.shape != ip_changes.shape:
        raise ScoringError("availability inputs differ in shape", reason="shape")
    if np.any(online_buckets < 0) or np.any(ip_changes < 0):
        raise ScoringError("counts must be >= 0", reason="bad_availability")
    share = np.minimum(online_buckets / params.availability_buckets, 1.0)
    penalty = np.power(params.ip_change_factor, ip_changes.astype(np.float64))
    penalty[ip_changes >= params.ip_changes_to_zero] = 0.0
    return (share * penalty).astype(np.float64)
