"""The next step towards ``desired`` replicas of the current revision: which to start, which
to stop — scaling, replacing lost replicas and rolling updates are all this one plan.

Rules (as a Kubernetes Deployment's rolling update):
- never more than ``desired + max_surge`` live replicas when starting new ones;
- never fewer than ``desired − max_unavailable`` ready ones after stopping (when there were
  at least that many before: a plan only stops ready replicas it can spare);
- replicas of an old revision go, those not ready first; surplus replicas of the current
  revision (after a scale-in) go too, those not ready first.

``live`` lists the replicas that count (not draining, stopped or failed), oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Slot:
    replica_id: str
    revision: int
    ready: bool


@dataclass(frozen=True, slots=True)
class Step:
    start: int
    stop: tuple[str, ...]


def plan(
    desired: int, revision: int, live: Sequence[Slot], *, max_surge: int, max_unavailable: int
) -> Step:
    if desired < 0 or max_surge < 0 or max_unavailable < 0:
        raise ValueError("desired, max_surge and max_unavailable must be >= 0")
    min_ready = max(0, desired - max_unavailable)
    new = [s for s in live if s.revision == revision]
    old = [s for s in live if s.revision != revision]
    # Surplus of the current revision: drop those not ready first, then the newest.
    surplus = max(0, len(new) - desired)
    by_readiness = sorted(reversed(new), key=lambda s: s.ready)
    stop = by_readiness[:surplus]
    ready = sum(s.ready for s in live) - sum(s.ready for s in stop)
    # Old replicas not ready carry no traffic: they go now.
    stop += [s for s in old if not s.ready]
    spare = max(0, ready - min_ready)
    stop += [s for s in old if s.ready][:spare]
    kept_new = len(new) - surplus
    live_after = len(live) - len(stop)
    start = max(0, min(desired - kept_new, desired + max_surge - live_after))
    return Step(start=start, stop=tuple(s.replica_id for s in stop))
