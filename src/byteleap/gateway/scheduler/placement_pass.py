"""One dispatch pass of placements over the same idle workers, fast.

A dispatcher places many jobs against one snapshot of idle workers, taking each chosen worker
out before the next job. Calling ``place`` for every job filters and scores every offer again
(about 20 ms for a thousand workers); ``PlacementPass`` filters each distinct requirement once
per pass and scores the remaining fits as arrays, so a job costs well under a millisecond.

The choice is exactly ``place``'s over the offers still free: the score's terms are computed
in the same order of float operations (so totals are bit-identical), and ties on the total are
broken by the same order tuple. A property test holds the two to that.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from byteleap.gateway.scheduler.matching import Fit, Rejection
from byteleap.gateway.scheduler.offers import Requirements, WorkerKey, WorkerOffer
from byteleap.gateway.scheduler.placement import (
    PRICE_FLOOR_PER_S,
    NoPlacement,
    Placement,
    PlacementWeights,
    _check_spread,
    _filter,
    _Scored,
    tie_order,
)

__all__ = ["PlacementPass"]

Floats = npt.NDArray[np.float64]


@dataclass
class _Candidates:
    """The fits of one (requirements, exclude) pair, as arrays, and who refused."""

    fits: list[Fit]
    rejections: list[Rejection]
    price: Floats
    throughput: Floats
    rtt: Floats
    running: Floats
    alive: npt.NDArray[np.bool_]
    index: dict[WorkerKey, int]
    # Each fit's place in placement.tie_order when nobody has replicas anywhere (no spread).
    tie_rank: npt.NDArray[np.int64]

    @classmethod
    def of(cls, fits: list[Fit], rejections: list[Rejection]) -> _Candidates:
        def column(values: Iterable[float]) -> Floats:
            return np.fromiter(values, dtype=np.float64, count=len(fits))

        return cls(
            fits=fits,
            rejections=rejections,
            price=column(f.price_per_s for f in fits),
            throughput=column(f.offer.verified_throughput for f in fits),
            rtt=column(f.offer.rtt_ms for f in fits),
            running=column(f.offer.running_jobs for f in fits),
            alive=np.ones(len(fits), dtype=np.bool_),
            index={f.offer.key: i for i, f in enumerate(fits)},
            tie_rank=_tie_ranks(fits),
        )


@dataclass
class PlacementPass:
    """Idle offers for one pass; ``place`` picks, ``take`` removes the worker picked."""

    offers: list[WorkerOffer]
    weights: PlacementWeights = field(default_factory=PlacementWeights)
    _taken: set[WorkerKey] = field(default_factory=set)
    _cache: dict[tuple[Requirements, frozenset[WorkerKey]], _Candidates] = field(
        default_factory=dict
    )

    @property
    def available(self) -> int:
        return len(self.offers) - len(self._taken)

    def take(self, key: WorkerKey) -> None:
        self._taken.add(key)
        for candidates in self._cache.values():
            i = candidates.index.get(key)
            if i is not None:
                candidates.alive[i] = False

    def place(
        self,
        requirements: Requirements,
        *,
        exclude: Collection[WorkerKey] = (),
        spread: Mapping[str, int] | None = None,
    ) -> Placement | NoPlacement:
        """What ``place(requirements, <offers not taken>, exclude=…, spread=…)`` returns."""
        c = self._candidates(requirements, frozenset(exclude))
        alive = np.flatnonzero(c.alive)
        if alive.size == 0:
            rejections = [r for r in c.rejections if r.key not in self._taken]
            return NoPlacement(requirements=requirements, rejections=tuple(rejections))
        spread = _check_spread(spread)
        w = self.weights
        price = c.price[alive]
        min_price = float(price.min())
        value = c.throughput[alive] / np.maximum(price, PRICE_FLOOR_PER_S)
        max_value = float(value.max())
        used = (
            np.fromiter(
                (spread.get(c.fits[i].offer.miner_hotkey, 0) for i in alive),
                dtype=np.float64,
                count=alive.size,
            )
            if spread
            else np.zeros(alive.size)
        )
        # Same operations in the same order as placement._score: the totals are bit-identical.
        price_term = w.price * (min_price + PRICE_FLOOR_PER_S) / (price + PRICE_FLOOR_PER_S)
        value_term = w.value * (value / max_value) if max_value > 0 else np.zeros(alive.size)
        latency_term = w.latency * w.latency_ref_ms / (w.latency_ref_ms + c.rtt[alive])
        spread_term = w.spread / (1 + used)
        load_term = w.load / (1 + c.running[alive])
        total = price_term + value_term + latency_term + spread_term + load_term
        best = np.flatnonzero(total == total.max())
        if not spread and best.size > 1:
            # Ties without spread: every key after the total is fixed per pass, so one
            # precomputed rank finds place()'s pick without building a tuple per tie.
            best = best[[int(np.argmin(c.tie_rank[alive[best]]))]]
        scored = [
            self._scored(
                c.fits[alive[j]],
                (
                    float(price_term[j]),
                    float(value_term[j]),
                    float(latency_term[j]),
                    float(spread_term[j]),
                    float(load_term[j]),
                ),
                float(total[j]),
                int(used[j]),
            )
            for j in best
        ]
        return min(scored, key=lambda s: s.order).placement(int(alive.size))

    def _candidates(self, req: Requirements, exclude: frozenset[WorkerKey]) -> _Candidates:
        cached = self._cache.get((req, exclude))
        if cached is None:
            fits, rejections = _filter(req, self.offers, exclude)
            cached = _Candidates.of(fits, rejections)
            for key in self._taken:
                i = cached.index.get(key)
                if i is not None:
                    cached.alive[i] = False
            self._cache[(req, exclude)] = cached
        return cached

    @staticmethod
    def _scored(
        f: Fit, terms: tuple[float, float, float, float, float], total: float, used: int
    ) -> _Scored:
        return _Scored(f, terms, (-total, *tie_order(f, used)))


def _tie_ranks(fits: list[Fit]) -> npt.NDArray[np.int64]:
    ranks = np.empty(len(fits), dtype=np.int64)
    ranks[sorted(range(len(fits)), key=lambda i: tie_order(fits[i], 0))] = np.arange(len(fits))
    return ranks
