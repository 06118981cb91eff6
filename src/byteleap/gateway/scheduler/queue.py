"""A job queue that is fair across tenants: weighted round robin, FIFO within a tenant.

Tenants with queued jobs take turns in a rotation (in the order they first queued). On its
turn a tenant of weight w may take up to w jobs, then the turn passes on; a tenant whose queue
empties leaves the rotation. So a tenant with 100 queued jobs cannot make a tenant with one job
wait for more than one turn of each other tenant.

``next_placeable(predicate)`` avoids head-of-line blocking: a tenant whose jobs cannot be
placed now loses its turn instead of stopping everyone, and within a tenant the first job in
FIFO order that can be placed is taken (a big job that cannot be placed yet lets the tenant's
smaller jobs through; the caller ages or caps such jobs if it must).

Each tenant's queue is bounded: ``enqueue`` raises ``QueueFull``. A retry put back at the front
(``front=True``) is exempt: the job was admitted once and must not be lost to the bound.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from byteleap.gateway.scheduler.errors import QueueFull, SchedulerError, UnknownJob

__all__ = ["FairQueue", "QueuedJob"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class QueuedJob(Generic[T]):
    """One queued job: its id (unique in the queue), its tenant and the caller's payload."""

    job_id: str
    tenant: str
    item: T


@dataclass(slots=True)
class _Lane(Generic[T]):
    weight: int
    jobs: OrderedDict[str, QueuedJob[T]] = field(default_factory=OrderedDict)
    # Jobs left in the current turn; 0 means the tenant's turn has not started.
    credit: int = 0


class FairQueue(Generic[T]):
    """Per-tenant FIFO queues served by weighted round robin (see the module docstring)."""

    def __init__(
        self,
        *,
        max_per_tenant: int = 1000,
        weights: Mapping[str, int] | None = None,
        default_weight: int = 1,
    ) -> None:
        if max_per_tenant < 1:
            raise SchedulerError("max_per_tenant must be >= 1", reason="bad_bound")
        self._max = max_per_tenant
        self._weights = dict(weights or {})
        self._default_weight = default_weight
        for tenant, weight in [*self._weights.items(), ("(default)", default_weight)]:
            _check_weight(tenant, weight)
        self._lanes: dict[str, _Lane[T]] = {}
        self._rotation: deque[str] = deque()
        self._tenant_of: dict[str, str] = {}

    def __len__(self) -> int:
        return len(self._tenant_of)

    def __contains__(self, job_id: object) -> bool:
        return job_id in self._tenant_of

    def __iter__(self) -> Iterator[QueuedJob[T]]:
        """Every queued job, tenants in rotation order, each tenant's jobs FIFO."""
        for tenant in list(self._rotation):
            yield from list(self._lanes[tenant].jobs.values())

    def depth(self, tenant: str) -> int:
        lane = self._lanes.get(tenant)
        return len(lane.jobs) if lane else 0

    def set_weight(self, tenant: str, weight: int) -> None:
        """Change a tenant's share; applies from its next turn."""
        _check_weight(tenant, weight)
        self._weights[tenant] = weight
        if tenant in self._lanes:
            self._lanes[tenant].weight = weight

    def enqueue(self, tenant: str, job_id: str, item: T, *, front: bool = False) -> QueuedJob[T]:
        """Queue a job at the back of its tenant's queue (or the front, for a retry)."""
        if job_id in self._tenant_of:
            raise SchedulerError(f"job {job_id} is already queued", reason="duplicate_job")
        lane = self._lanes.get(tenant)
        if not front and lane is not None and len(lane.jobs) >= self._max:
            raise QueueFull(
                f"tenant {tenant} already has {self._max} queued jobs",
                tenant=tenant,
                limit=self._max,
            )
        if lane is None:
            lane = _Lane(weight=self._weights.get(tenant, self._default_weight))
            self._lanes[tenant] = lane
            self._rotation.append(tenant)
        job = QueuedJob(job_id=job_id, tenant=tenant, item=item)
        lane.jobs[job_id] = job
        if front:
            lane.jobs.move_to_end(job_id, last=False)
        self._tenant_of[job_id] = tenant
        return job

    def cancel(self, job_id: str) -> QueuedJob[T]:
        """Take a job out of the queue wherever it is; ``UnknownJob`` if it is not queued."""
        tenant = self._tenant_of.get(job_id)
        if tenant is None:
            raise UnknownJob(f"job {job_id} is not queued", job_id=job_id)
        return self._take(tenant, job_id)

    def dequeue(self) -> QueuedJob[T] | None:
        """The next job in fair order, or None when the queue is empty."""
        return self._next(lambda lane: next(iter(lane.jobs.values()), None))

    def next_placeable(self, predicate: Callable[[QueuedJob[T]], bool]) -> QueuedJob[T] | None:
        """The next job in fair order for which ``predicate`` (e.g. "a worker fits") holds.

        Tenants with nothing placeable lose their turn; None when no queued job is placeable.
        """

        def first_placeable(lane: _Lane[T]) -> QueuedJob[T] | None:
            return next((job for job in lane.jobs.values() if predicate(job)), None)

        return self._next(first_placeable)

    def _next(self, select: Callable[[_Lane[T]], QueuedJob[T] | None]) -> QueuedJob[T] | None:
        for _ in range(len(self._rotation)):
            tenant = self._rotation[0]
            lane = self._lanes[tenant]
            job = select(lane)
            if job is None:
                lane.credit = 0
                self._rotation.rotate(-1)
                continue
            if lane.credit == 0:
                lane.credit = lane.weight
            lane.credit -= 1
            if lane.credit == 0 and len(lane.jobs) > 1:
                self._rotation.rotate(-1)
            return self._take(tenant, job.job_id)
        return None

    def _take(self, tenant: str, job_id: str) -> QueuedJob[T]:
        lane = self._lanes[tenant]
        job = lane.jobs.pop(job_id)
        del self._tenant_of[job_id]
        if not lane.jobs:
            del self._lanes[tenant]
            self._rotation.remove(tenant)
        return job


def _check_weight(tenant: str, weight: int) -> None:
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 1:
        raise SchedulerError(
            f"tenant {tenant}: weight must be an integer >= 1, got {weight!r}",
            reason="bad_weight",
            tenant=tenant,
        )
