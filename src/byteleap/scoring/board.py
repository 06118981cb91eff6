"""From records to a ScoreBoard: worker scores, each miner's best K, lease, final.

``score_network`` takes plain records; ``score_columns`` is the same computation on arrays for
callers (the store, the benchmark) that already hold columns. Which lease revenue counts and
the lease share are in ``leases``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

from byteleap.scoring.availability import availability_fractions
from byteleap.scoring.challenge import ChallengeColumns, ChallengeStats, challenge_stats
from byteleap.scoring.errors import ScoringError
from byteleap.scoring.leases import LeaseTally, lease_share, passes_from_columns, tally_leases
from byteleap.scoring.params import ScoringParams
from byteleap.scoring.records import (
    ChallengeRecord,
    IpChange,
    LeaseRevenue,
    WorkerAvailability,
    WorkerKey,
)
from byteleap.scoring.results import MinerScore, ScoreBoard, WorkerScore

__all__ = ["score_columns", "score_network"]

_DEFAULT = ScoringParams()
_NONE: Mapping[WorkerKey, str] = {}


def score_network(
    records: Iterable[ChallengeRecord],
    availability: Iterable[WorkerAvailability] = (),
    ip_changes: Iterable[IpChange] = (),
    leases: Iterable[LeaseRevenue] = (),
    *,
    now: float,
    params: ScoringParams = _DEFAULT,
    miners: Iterable[str] = (),
    flagged: Mapping[WorkerKey, str] = _NONE,
) -> ScoreBoard:
    """Score every miner in ``miners`` and every miner or worker the inputs mention.

    ``flagged`` names workers whose identity is in doubt, with why (``shared_key``,
    ``shared_gpu``, ...): their challenge score is 0 and their lease revenue does not count.
    """
    records = list(records)
    avail = list(availability)
    changes = list(ip_changes)
    keys = sorted({r.key for r in records} | {a.key for a in avail} | {c.key for c in changes})
    index = {k: i for i, k in enumerate(keys)}
    online = np.zeros(len(keys), dtype=np.int64)
    for a in avail:
        # Two samples for one worker (a re-sent batch): keep the larger, never add them.
        online[index[a.key]] = max(online[index[a.key]], a.online_buckets)
    since = now - params.availability_hours * 3600.0
    hops = Counter(c.key for c in changes if since < c.at <= now)
    ip_counts = np.array([hops[k] for k in keys], dtype=np.int64)
    columns = ChallengeColumns.from_records(records, index)
    return score_columns(
        keys,
        columns,
        online,
        ip_counts,
        leases,
        now=now,
        params=params,
        miners=miners,
        flagged=flagged,
    )


def score_columns(
    workers: Sequence[WorkerKey],
    columns: ChallengeColumns,
    online_buckets: NDArray[np.int64],
    ip_changes: NDArray[np.int64],
    leases: Iterable[LeaseRevenue] = (),
    *,
    now: float,
    params: ScoringParams = _DEFAULT,
    miners: Iterable[str] = (),
    flagged: Mapping[WorkerKey, str] = _NONE,
    lease_passes: Mapping[WorkerKey, Sequence[float]] | None = None,
) -> ScoreBoard:
    """The whole computation; ``columns.worker`` and both count arrays index ``workers``.

    ``lease_passes``: each worker's passed-challenge times (ascending) that may vouch for its
    lease revenue, for callers whose columns do not hold the passes' real times or reach back
    far enough; None reads them from ``columns``.
    """
    n = len(workers)
    if online_buckets.shape != (n,) or ip_changes.shape != (n,):
        raise ScoringError("one availability count per worker is required", reason="shape")
    stats = challenge_stats(columns, n, now=now, params=params)
    avail = availability_fractions(online_buckets, ip_changes, params)
    scores = stats.performance * stats.participation * avail
    scores[stats.banned] = 0.0
    flags = [flagged.get(k) for k in workers]
    scores[np.array([f is not None for f in flags], dtype=np.bool_)] = 0.0

    if lease_passes is None:
        lease_passes = passes_from_columns(workers, columns, now=now)
    tally = tally_leases(leases, lease_passes, flagged, now=now, params=params)
    hotkeys = sorted({k[0] for k in workers} | {*tally.by_miner, *tally.rejected, *miners})
    miner_of = np.array(_miner_indices(workers, hotkeys), dtype=np.intp)
    raw, counted = _best_k_sums(miner_of, scores, len(hotkeys), params.top_k_workers)
    share = lease_share(tally.total, params)
    miner_rows = _miner_rows(hotkeys, miner_of, raw, tally, share)
    revenue = [tally.by_worker.get(k, 0.0) for k in workers]
    worker_rows = _worker_rows(workers, stats, avail, ip_changes, scores, counted, flags, revenue)
    return ScoreBoard(
        now=now,
        lease_active=tally.total > 0,
        miners=miner_rows,
        workers=tuple(sorted(worker_rows, key=lambda w: (w.miner_hotkey, w.worker_id))),
        lease_share=share,
        lease_revenue=tally.total,
    )


def _miner_indices(workers: Sequence[WorkerKey], hotkeys: list[str]) -> list[int]:
    position = {h: i for i, h in enumerate(hotkeys)}
    return [position[k[0]] for k in workers]


def _best_k_sums(
    miner_of: NDArray[np.intp], scores: NDArray[np.float64], n_miners: int, k: int
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Per miner, the sum of its k best worker scores; and which workers were counted."""
    order = np.lexsort((-scores, miner_of))
    m = miner_of[order]
    counts = np.bincount(m, minlength=n_miners)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(m.size) - starts[m]
    top = rank < k
    sums = np.bincount(m[top], weights=scores[order][top], minlength=n_miners)
    counted = np.zeros(scores.size, dtype=np.bool_)
    counted[order[top]] = True
    return sums.astype(np.float64), counted


def _part(values: NDArray[np.float64], of: float) -> NDArray[np.float64]:
    return values / of if of > 0 else np.zeros_like(values)


def _miner_rows(
    hotkeys: list[str],
    miner_of: NDArray[np.intp],
    raw: NDArray[np.float64],
    tally: LeaseTally,
    share: float,
) -> tuple[MinerScore, ...]:
    revenue = np.array([tally.by_miner.get(h, 0.0) for h in hotkeys], dtype=np.float64)
    lease = _part(revenue, tally.total)
    # Shares of the totals, not of the best miner: the lease share s then buys exactly s of
    # the weights and a miner's gain from its own revenue is bounded (scoring.leases).
    weights = share * lease + (1.0 - share) * _part(raw, float(raw.sum()))
    final = _part(weights, float(weights.max()) if weights.size else 0.0)
    challenge = _part(raw, float(raw.max()) if raw.size else 0.0)
    workers = np.bincount(miner_of, minlength=len(hotkeys))
    return tuple(
        MinerScore(
            hotkey=h,
            workers=int(workers[i]),
            challenge_raw=float(raw[i]),
            challenge=float(challenge[i]),
            lease_revenue=float(revenue[i]),
            lease=float(lease[i]),
            final=float(final[i]),
            share=float(weights[i]),
            lease_rejected=tally.rejected.get(h, 0.0),
        )
        for i, h in enumerate(hotkeys)
    )


def _worker_rows(
    workers: Sequence[WorkerKey],
    stats: ChallengeStats,
    avail: NDArray[np.float64],
    ip_changes: NDArray[np.int64],
    scores: NDArray[np.float64],
    counted: NDArray[np.bool_],
    flags: list[str | None],
    revenue: list[float],
) -> list[WorkerScore]:
    columns = zip(
        workers,
        stats.successes.tolist(),
        stats.failures.tolist(),
        stats.wrong_answers.tolist(),
        stats.participation.tolist(),
        stats.performance.tolist(),
        avail.tolist(),
        ip_changes.tolist(),
        stats.banned.tolist(),
        scores.tolist(),
        counted.tolist(),
        flags,
        revenue,
        strict=True,
    )
    return [
        WorkerScore(k[0], k[1], s, f, wr, p, perf, a, ipc, b, sc, c, flag, r)
        for k, s, f, wr, p, perf, a, ipc, b, sc, c, flag, r in columns
    ]
