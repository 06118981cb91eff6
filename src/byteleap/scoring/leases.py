"""Lease revenue: which of it counts, and how much of the weights it may move.

**Which revenue counts.** A record in the lease window counts only if it names a worker, the
worker is not flagged (a duplicate identity), and the worker passed a challenge in
``[anchor − lease_challenge_window_min, at]``, where ``anchor`` is when its lease began
(``LeaseRevenue.anchor``). A worker that never existed cannot pass a challenge, so receipts a
miner earns for one, however well they verify, count for nothing. The window is anchored at
the lease's start because a leased worker is not challenged: a pass before the lease vouches
for every period of it.

**How much lease may move.** With R the counted revenue of the whole network and V
(``lease_emission_value``) what the miners' emission over one lease window is worth, the lease
share of the weights is s(R) = min(max_lease_share, R / V): 0 with no revenue, growing with
it, never a jump. A miner's lease score is its part of R. Adding x to one's own revenue raises
s·(own revenue)/R at a rate of at most 1/V and lowers the challenge share, so the weight it buys
is at most x / V: worth at most what it paid (docs/scoring.md has the proof).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from byteleap.scoring.challenge import ChallengeColumns
from byteleap.scoring.params import ScoringParams
from byteleap.scoring.records import LeaseRevenue, WorkerKey

__all__ = ["LeaseTally", "lease_share", "passes_from_columns", "tally_leases"]


@dataclass(frozen=True, slots=True)
class LeaseTally:
    """Revenue in the lease window, split into what counts and what does not."""

    total: float  # R: all counted revenue
    by_miner: dict[str, float]  # counted, per miner hotkey
    by_worker: dict[WorkerKey, float]  # counted, per worker
    rejected: dict[str, float]  # in the window but not counted, per miner hotkey


def lease_share(total: float, params: ScoringParams) -> float:
    """s(R): the share of the weights that follows lease revenue when the network earns R."""
    return min(params.max_lease_share, total / params.lease_emission_value)


def passes_from_columns(
    workers: Sequence[WorkerKey], columns: ChallengeColumns, *, now: float
) -> dict[WorkerKey, list[float]]:
    """Each worker's passed-challenge times up to ``now``, ascending."""
    ok = columns.ok & (columns.at <= now)
    worker, at = columns.worker[ok], columns.at[ok]
    order = np.lexsort((at, worker))
    passes: dict[WorkerKey, list[float]] = {}
    for i, t in zip(worker[order].tolist(), at[order].tolist(), strict=True):
        passes.setdefault(workers[i], []).append(t)
    return passes


def _vouched(times: Sequence[float], since: float, until: float) -> bool:
    """Whether the ascending ``times`` hold one in ``[since, until]``."""
    i = bisect.bisect_left(times, since)
    return i < len(times) and times[i] <= until


def tally_leases(
    leases: Iterable[LeaseRevenue],
    passes: Mapping[WorkerKey, Sequence[float]],
    flagged: Mapping[WorkerKey, str],
    *,
    now: float,
    params: ScoringParams,
) -> LeaseTally:
    """Split the revenue in ``(now − lease_window, now]`` by the rules above.

    ``passes`` holds each worker's passed-challenge times, ascending.
    """
    since = now - params.lease_window_min * 60.0
    lookback = params.lease_challenge_window_min * 60.0
    counted: dict[WorkerKey, list[float]] = {}
    rejected: dict[str, list[float]] = {}
    for lease in leases:
        if not since < lease.at <= now:
            continue
        key = lease.key
        ok = (
            bool(lease.worker_id)
            and key not in flagged
            and _vouched(passes.get(key, ()), lease.anchor - lookback, lease.at)
        )
        if ok:
            counted.setdefault(key, []).append(lease.amount)
        else:
            rejected.setdefault(lease.miner_hotkey, []).append(lease.amount)
    by_miner: dict[str, list[float]] = {}
    for key, amounts in counted.items():
        by_miner.setdefault(key[0], []).extend(amounts)
    # fsum is exactly rounded, so totals do not depend on the order receipts arrive in.
    return LeaseTally(
        total=math.fsum(a for amounts in counted.values() for a in amounts),
        by_miner={h: math.fsum(v) for h, v in by_miner.items()},
        by_worker={k: math.fsum(v) for k, v in counted.items()},
        rejected={h: math.fsum(v) for h, v in rejected.items()},
    )
