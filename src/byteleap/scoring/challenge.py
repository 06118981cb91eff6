"""Per-worker challenge rules over the sliding window, on columns so 25,600 workers stay fast.

- participation p = clip((successes − failure_weight·failures) / expected_successes, 0, 1):
  every failure (a timeout included) cancels a success, so dodging a reveal it cannot answer
  costs a worker as much as the round it skipped would have paid, twice over;
- performance = the lower-tail mean of verified throughput up to the ``throughput_quantile``
  (CVaR at q, q = 0.5 by default: the mean of the slower half of the worker's rounds). It never
  exceeds the q-quantile itself, equals the throughput of a steady worker, and is strictly below
  the mean of any series that varies, so a steady worker beats a spiky one of the same mean for
  every spike pattern; a bare median does not (``[0, 150, 150]`` has median 150 > mean 100).
  It is monotone: raising any sample, or adding a sample at or above the q-quantile, never
  lowers it;
- banned: a verified wrong answer (``VERIFIED_WRONG``) within ``wrong_answer_ban_min`` before
  ``now`` zeroes the worker's challenge score. Timeouts never ban.

Windows are half-open, ``(now − length, now]``: records after ``now`` are ignored.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from byteleap.scoring.errors import ScoringError
from byteleap.scoring.params import ScoringParams
from byteleap.scoring.records import ChallengeRecord, Verdict, WorkerKey

__all__ = [
    "MAX_THROUGHPUT_FLOPS",
    "ChallengeColumns",
    "ChallengeStats",
    "challenge_stats",
    "lower_tail_mean",
]

# Far above any accelerator (an H100 is ~1e15 in fp16), low enough that summing K worker scores
# cannot overflow to inf and turn normalisation into NaN.
MAX_THROUGHPUT_FLOPS = 1e30


@dataclass(frozen=True, slots=True)
class ChallengeColumns:
    """Challenge records as parallel arrays; ``worker`` indexes the caller's worker list."""

    worker: NDArray[np.intp]
    at: NDArray[np.float64]
    ok: NDArray[np.bool_]
    wrong: NDArray[np.bool_]
    throughput: NDArray[np.float64]

    @classmethod
    def from_records(
        cls, records: Sequence[ChallengeRecord], index: Mapping[WorkerKey, int]
    ) -> ChallengeColumns:
        return cls(
            worker=np.fromiter((index[r.key] for r in records), np.intp, len(records)),
            at=np.fromiter((r.at for r in records), np.float64, len(records)),
            ok=np.fromiter((r.verdict is Verdict.OK for r in records), np.bool_, len(records)),
            wrong=np.fromiter((r.verified_wrong for r in records), np.bool_, len(records)),
            throughput=np.fromiter((r.throughput_flops for r in records), np.float64, len(records)),
        )

    def check(self, n_workers: int) -> None:
        """Refuse columns that would silently corrupt scores (NaN throughput, bad indices)."""
        sizes = {a.shape for a in (self.worker, self.at, self.ok, self.wrong, self.throughput)}
        if len(sizes) != 1 or len(next(iter(sizes))) != 1:
            raise ScoringError("challenge columns must be 1-D and the same length", reason="shape")
        if self.worker.size and (self.worker.min() < 0 or self.worker.max() >= n_workers):
            raise ScoringError("challenge column names an unknown worker", reason="bad_worker")
        plausible = (self.throughput >= 0) & (self.throughput <= MAX_THROUGHPUT_FLOPS)
        if not np.all(plausible):
            raise ScoringError(
                f"throughput must lie in [0, {MAX_THROUGHPUT_FLOPS:g}] flop/s",
                reason="bad_throughput",
            )
        if np.any(self.ok & self.wrong):
            raise ScoringError("a passed challenge cannot be a wrong answer", reason="bad_verdict")


@dataclass(frozen=True, slots=True)
class ChallengeStats:
    """Per-worker results, aligned with the worker list the columns index."""

    successes: NDArray[np.int64]
    failures: NDArray[np.int64]
    wrong_answers: NDArray[np.int64]
    participation: NDArray[np.float64]
    performance: NDArray[np.float64]
    banned: NDArray[np.bool_]


def lower_tail_mean(
    groups: NDArray[np.intp], values: NDArray[np.float64], n_groups: int, q: float
) -> NDArray[np.float64]:
    """Per group, the mean of the lowest fraction q of its values (fractional at the edge).

    The sort puts each group's values in ascending order whatever the input order, so the
    result does not depend on the order of the records.
    """
    out = np.zeros(n_groups, dtype=np.float64)
    if values.size == 0:
        return out
    order = np.lexsort((values, groups))
    g = groups[order]
    v = values[order]
    counts = np.bincount(g, minlength=n_groups)
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    rank = np.arange(g.size) - starts[g]
    mass = q * counts.astype(np.float64)
    whole = np.floor(mass).astype(np.int64)
    edge = (mass - whole)[g]
    weight = np.where(rank < whole[g], 1.0, np.where(rank == whole[g], edge, 0.0))
    sums = np.bincount(g, weights=weight * v, minlength=n_groups)
    seen = counts > 0
    out[seen] = sums[seen] / mass[seen]
    return out


def _count(worker: NDArray[np.intp], mask: NDArray[np.bool_], n: int) -> NDArray[np.int64]:
    return np.bincount(worker[mask], minlength=n).astype(np.int64)


def challenge_stats(
    columns: ChallengeColumns, n_workers: int, *, now: float, params: ScoringParams
) -> ChallengeStats:
    """Participation, performance and ban per worker over the window ending at ``now``."""
    columns.check(n_workers)
    w, at = columns.worker, columns.at
    not_future = at <= now
    in_window = not_future & (at > now - params.window_s)
    passed = in_window & columns.ok
    failed = in_window & ~columns.ok
    successes = _count(w, passed, n_workers)
    failures = _count(w, failed, n_workers)
    net = successes - params.failure_weight * failures
    participation = np.clip(net / params.expected_successes, 0.0, 1.0)
    ban_from = now - params.wrong_answer_ban_min * 60.0
    banned = _count(w, columns.wrong & not_future & (at > ban_from), n_workers) > 0
    performance = lower_tail_mean(
        w[passed], columns.throughput[passed], n_workers, params.throughput_quantile
    )
    return ChallengeStats(
        successes=successes,
        failures=failures,
        wrong_answers=_count(w, failed & columns.wrong, n_workers),
        participation=participation.astype(np.float64),
        performance=performance,
        banned=banned,
    )
