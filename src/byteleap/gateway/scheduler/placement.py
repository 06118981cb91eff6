"""Placement: the hard filters of ``matching``, then a score that ranks the workers that fit.

Score of a fitting worker (higher is better), each term in [0, 1] and weighted by
``PlacementWeights`` (defaults in brackets):

    price    [0.40]  (p_min + ε) / (p + ε)          p = this worker's price for the work,
                                                    p_min = the cheapest fit, ε = 1e-9 /s
    value    [0.25]  (T / max(p, ε)) / max over fits of the same   T = verified flop/s
    latency  [0.10]  ref / (ref + rtt_ms)           ref = ``latency_ref_ms`` (50 ms)
    spread   [0.20]  1 / (1 + n_miner)              n_miner = the caller's replicas already on
                                                    this worker's miner (``spread``)
    load     [0.05]  1 / (1 + running_jobs)

    score = Σ weight × term

Every term is monotone (cheaper, faster, closer, less used, less loaded never scores lower),
so the winner is never dominated by another fit. Ties are broken by price, then throughput
(higher first), rtt, n_miner, running_jobs, miner hotkey and worker id: the order is total and
needs no randomness.

``place_many`` puts N replicas on workers of different miners where it can: each pick takes a
worker from the miners holding the fewest replicas of this plan, best score first, and counts
the pick into ``spread`` before scoring the next one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from byteleap.gateway.scheduler.errors import PlacementRefused, SchedulerError
from byteleap.gateway.scheduler.matching import Fit, Rejection, RejectReason, fit
from byteleap.gateway.scheduler.offers import Requirements, WorkerKey, WorkerOffer

__all__ = [
    "PRICE_FLOOR_PER_S",
    "NoPlacement",
    "Placement",
    "PlacementPlan",
    "PlacementWeights",
    "Ranking",
    "ScoreBreakdown",
    "place",
    "place_many",
    "rank",
]

PRICE_FLOOR_PER_S = 1e-9
# Refusals that go away by themselves: the worker would fit once it is idle again.
_TRANSIENT = frozenset(
    {RejectReason.OFFLINE, RejectReason.BUSY, RejectReason.LEASED, RejectReason.CHALLENGED}
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class PlacementWeights(_Frozen):
    """How much each term of the placement score counts (see the module docstring)."""

    price: float = Field(default=0.40, ge=0, allow_inf_nan=False)
    value: float = Field(default=0.25, ge=0, allow_inf_nan=False)
    latency: float = Field(default=0.10, ge=0, allow_inf_nan=False)
    spread: float = Field(default=0.20, ge=0, allow_inf_nan=False)
    load: float = Field(default=0.05, ge=0, allow_inf_nan=False)
    latency_ref_ms: float = Field(default=50.0, gt=0, allow_inf_nan=False)


class ScoreBreakdown(_Frozen):
    """Each term's weighted contribution to ``total``."""

    price: float
    value: float
    latency: float
    spread: float
    load: float
    total: float


class Placement(_Frozen):
    """The chosen worker, what it costs per second, which GPUs to use and why it won."""

    worker: WorkerOffer
    price_per_s: float
    gpu_indices: tuple[int, ...]
    score: ScoreBreakdown
    candidates: int = Field(ge=1, description="workers that passed every hard filter")

    @property
    def key(self) -> WorkerKey:
        return self.worker.key


class NoPlacement(_Frozen):
    """No worker (or too few) can take the work; one ``Rejection`` per refused offer."""

    requirements: Requirements
    rejections: tuple[Rejection, ...]
    requested: int = Field(default=1, ge=1)
    placeable: int = Field(default=0, ge=0, description="workers that did fit")

    def reason_counts(self) -> dict[str, int]:
        """How many workers failed each filter (a worker failing two counts twice)."""
        counts = Counter(r.value for rej in self.rejections for r in rej.reasons)
        return dict(sorted(counts.items()))

    @property
    def would_fit_later(self) -> bool:
        """True when some refused worker failed only on its state (busy, offline …).

        Then the work can wait in the queue (HTTP 409); otherwise no worker on offer has
        the capabilities at that price (HTTP 422).
        """
        return any(set(rej.reasons) <= _TRANSIENT for rej in self.rejections)

    @property
    def message(self) -> str:
        if not self.rejections and self.placeable == 0:
            return "no workers on offer"
        summary = ", ".join(f"{n} {reason}" for reason, n in self.reason_counts().items())
        head = f"{self.placeable} of {self.requested} replicas placeable"
        return f"{head}; refused: {summary}" if summary else head

    def to_error(self) -> PlacementRefused:
        return PlacementRefused(self.message, refusal=self)


class PlacementPlan(_Frozen):
    """Where each of ``requested`` replicas goes; fewer placements only when asked to allow it."""

    placements: tuple[Placement, ...]
    requested: int = Field(ge=1)

    @property
    def missing(self) -> int:
        return self.requested - len(self.placements)

    @property
    def complete(self) -> bool:
        return self.missing == 0


class Ranking(_Frozen):
    """Every fitting worker, best first, and every refused one with its reasons."""

    placements: tuple[Placement, ...]
    rejections: tuple[Rejection, ...]


@dataclass(frozen=True, slots=True)
class _Scored:
    fit: Fit
    terms: tuple[float, float, float, float, float]
    order: tuple[float | int | str, ...]

    def placement(self, candidates: int) -> Placement:
        # Built only for the winners: scoring a thousand offers should not build a thousand models.
        price, value, latency, spread, load = self.terms
        score = ScoreBreakdown(
            price=price,
            value=value,
            latency=latency,
            spread=spread,
            load=load,
            total=-float(self.order[0]),
        )
        f = self.fit
        return Placement(
            worker=f.offer,
            price_per_s=f.price_per_s,
            gpu_indices=f.gpu_indices,
            score=score,
            candidates=candidates,
        )


def rank(
    requirements: Requirements,
    offers: Iterable[WorkerOffer],
    *,
    spread: Mapping[str, int] | None = None,
    exclude: Collection[WorkerKey] = (),
    weights: PlacementWeights | None = None,
) -> Ranking:
    """Filter ``offers`` and order the ones that fit, best first (see the module docstring)."""
    fits, rejections = _filter(requirements, offers, exclude)
    scored = _score(fits, _check_spread(spread), weights or PlacementWeights())
    placements = tuple(s.placement(len(fits)) for s in sorted(scored, key=lambda s: s.order))
    return Ranking(placements=placements, rejections=tuple(rejections))


def place(
    requirements: Requirements,
    offers: Iterable[WorkerOffer],
    *,
    spread: Mapping[str, int] | None = None,
    exclude: Collection[WorkerKey] = (),
    weights: PlacementWeights | None = None,
) -> Placement | NoPlacement:
    """The best worker for one replica, or why none fits.

    ``spread`` counts the caller's (tenant's or service's) replicas per miner hotkey;
    ``exclude`` names workers not to use (e.g. the ones a job already failed on).
    """
    fits, rejections = _filter(requirements, offers, exclude)
    if not fits:
        return NoPlacement(requirements=requirements, rejections=tuple(rejections))
    scored = _score(fits, _check_spread(spread), weights or PlacementWeights())
    return min(scored, key=lambda s: s.order).placement(len(fits))


def place_many(
    requirements: Requirements,
    count: int,
    offers: Iterable[WorkerOffer],
    *,
    spread: Mapping[str, int] | None = None,
    exclude: Collection[WorkerKey] = (),
    weights: PlacementWeights | None = None,
    partial: bool = False,
) -> PlacementPlan | NoPlacement:
    """``count`` replicas on distinct workers, spread over as many miners as possible.

    All or nothing unless ``partial``: then as many as fit (at least one) are placed.
    """
    if count < 1:
        raise SchedulerError(f"count must be >= 1, got {count}", reason="bad_count")
    fits, rejections = _filter(requirements, offers, exclude)
    if not fits or (len(fits) < count and not partial):
        return NoPlacement(
            requirements=requirements,
            rejections=tuple(rejections),
            requested=count,
            placeable=len(fits),
        )
    counts = Counter(_check_spread(spread))
    in_plan: Counter[str] = Counter()
    remaining = list(fits)
    chosen: list[Placement] = []
    w = weights or PlacementWeights()
    while remaining and len(chosen) < count:
        scored = _score(remaining, counts, w)
        best = min(scored, key=lambda s: (in_plan[s.fit.offer.miner_hotkey], s.order))
        chosen.append(best.placement(len(remaining)))
        remaining.remove(best.fit)
        counts[best.fit.offer.miner_hotkey] += 1
        in_plan[best.fit.offer.miner_hotkey] += 1
    return PlacementPlan(placements=tuple(chosen), requested=count)


def _check_spread(spread: Mapping[str, int] | None) -> Mapping[str, int]:
    spread = spread or {}
    bad = {m: n for m, n in spread.items() if n < 0}
    if bad:
        raise SchedulerError(f"negative replica counts in spread: {bad}", reason="bad_spread")
    return spread


def _filter(
    req: Requirements, offers: Iterable[WorkerOffer], exclude: Collection[WorkerKey]
) -> tuple[list[Fit], list[Rejection]]:
    excluded = set(exclude)
    seen: set[WorkerKey] = set()
    fits: list[Fit] = []
    rejections: list[Rejection] = []
    for offer in offers:
        if offer.key in seen:
            raise SchedulerError(f"worker {offer.key} offered twice", reason="duplicate_offer")
        seen.add(offer.key)
        result = fit(req, offer, excluded=offer.key in excluded)
        if isinstance(result, Fit):
            fits.append(result)
        else:
            rejections.append(result)
    return fits, rejections


def _score(fits: Sequence[Fit], spread: Mapping[str, int], w: PlacementWeights) -> list[_Scored]:
    if not fits:
        return []
    min_price = min(f.price_per_s for f in fits)
    values = [f.offer.verified_throughput / max(f.price_per_s, PRICE_FLOOR_PER_S) for f in fits]
    max_value = max(values)
    scored: list[_Scored] = []
    for f, value in zip(fits, values, strict=True):
        o = f.offer
        used = spread.get(o.miner_hotkey, 0)
        price = w.price * (min_price + PRICE_FLOOR_PER_S) / (f.price_per_s + PRICE_FLOOR_PER_S)
        val = w.value * (value / max_value if max_value > 0 else 0.0)
        latency = w.latency * w.latency_ref_ms / (w.latency_ref_ms + o.rtt_ms)
        spreading = w.spread / (1 + used)
        load = w.load / (1 + o.running_jobs)
        total = price + val + latency + spreading + load
        terms = (price, val, latency, spreading, load)
        scored.append(_Scored(f, terms, (-total, *tie_order(f, used))))
    return scored


def tie_order(f: Fit, used: int) -> tuple[float | int | str, ...]:
    """What decides between fits of equal total, in order (see the module docstring)."""
    o = f.offer
    return (
        f.price_per_s,
        -o.verified_throughput,
        o.rtt_ms,
        used,
        o.running_jobs,
        o.miner_hotkey,
        o.worker_id,
    )
