"""The scheduler's pure core: where work runs, in what order, and how it survives a lost worker.

No I/O, no database, no network: the gateway's job, lease and service code hands over plain
``WorkerOffer`` snapshots and ``Requirements``, and gets back decisions.

- ``place`` / ``place_many`` (``placement``): hard filters (state idle, region, GPU count,
  model and VRAM, CPU, RAM, a price, max price), then a documented score over price,
  verified throughput per unit price, latency, spreading across miners and load. No fit gives
  a ``NoPlacement`` with one ``Rejection`` (every failed filter, with details) per offer.
  ``PlacementPass`` gives ``place``'s answers for many jobs over one snapshot, fast.
- ``FairQueue`` (``queue``): per-tenant FIFO queues served by weighted round robin, bounded
  per tenant (``QueueFull``), ``next_placeable`` so an unplaceable job blocks no one.
- ``AttemptLedger`` / ``reschedule`` (``failover``): attempt ids per placement; a lost worker's
  jobs are retried and ``accept_result`` lets each job complete exactly once.

Errors: ``SchedulerError`` and its subclasses (``errors``), each with a ``reason``.
"""

from byteleap.gateway.scheduler.errors import (
    PlacementRefused,
    QueueFull,
    SchedulerError,
    UnknownJob,
)
from byteleap.gateway.scheduler.failover import Attempt, AttemptLedger, AttemptState, reschedule
from byteleap.gateway.scheduler.matching import Fit, Refusal, Rejection, RejectReason, fit
from byteleap.gateway.scheduler.offers import (
    GpuSpec,
    Requirements,
    WorkerKey,
    WorkerOffer,
    WorkerState,
)
from byteleap.gateway.scheduler.placement import (
    PRICE_FLOOR_PER_S,
    NoPlacement,
    Placement,
    PlacementPlan,
    PlacementWeights,
    Ranking,
    ScoreBreakdown,
    place,
    place_many,
    rank,
)
from byteleap.gateway.scheduler.placement_pass import PlacementPass
from byteleap.gateway.scheduler.queue import FairQueue, QueuedJob

__all__ = [
    "PRICE_FLOOR_PER_S",
    "Attempt",
    "AttemptLedger",
    "AttemptState",
    "FairQueue",
    "Fit",
    "GpuSpec",
    "NoPlacement",
    "Placement",
    "PlacementPass",
    "PlacementPlan",
    "PlacementRefused",
    "PlacementWeights",
    "QueueFull",
    "QueuedJob",
    "Ranking",
    "Refusal",
    "RejectReason",
    "Rejection",
    "Requirements",
    "SchedulerError",
    "ScoreBreakdown",
    "UnknownJob",
    "WorkerKey",
    "WorkerOffer",
    "WorkerState",
    "fit",
    "place",
    "place_many",
    "rank",
    "reschedule",
]
