"""Errors raised by the scheduler's pure core.

One base, under the project root:

    ByteleapError
     └── SchedulerError        bad input or an illegal move (reason names which)
          ├── QueueFull        a tenant's queue is at its bound (reason ``tenant_queue_full``)
          ├── UnknownJob       a job id the queue or the ledger does not hold (``unknown_job``)
          └── PlacementRefused no worker fits; carries the ``NoPlacement`` (``no_placement``)

Reasons raised as plain ``SchedulerError``: ``duplicate_offer``, ``duplicate_job``,
``bad_weight``, ``job_completed``, ``unknown_attempt``.
"""

from __future__ import annotations

from typing import Any

from byteleap.errors import ByteleapError

__all__ = ["PlacementRefused", "QueueFull", "SchedulerError", "UnknownJob"]


class SchedulerError(ByteleapError):
    """The scheduler was handed input it cannot act on, or asked for an illegal move."""

    reason = "scheduler_error"


class QueueFull(SchedulerError):
    """A tenant already has as many queued jobs as its bound allows (maps to HTTP 429)."""

    reason = "tenant_queue_full"


class UnknownJob(SchedulerError):
    """The job id is not queued (or not known to the ledger)."""

    reason = "unknown_job"


class PlacementRefused(SchedulerError):
    """No worker can take the work now; ``context['refusal']`` is the ``NoPlacement``."""

    reason = "no_placement"

    def __init__(self, message: str, *, refusal: Any) -> None:
        super().__init__(message, refusal=refusal)
        self.refusal = refusal
