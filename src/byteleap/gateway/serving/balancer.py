"""Which ready replica takes the next request: the one with the fewest outstanding requests.

Ties go to the replica that has served fewer requests (so equally idle replicas take turns),
then to the smaller id: the choice is total and needs no randomness.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Candidate:
    replica_id: str
    outstanding: int
    served: int = 0


def pick(candidates: Iterable[Candidate], *, exclude: Collection[str] = ()) -> str | None:
    """The replica for the next request, or None when there is none to pick."""
    best = min(
        (c for c in candidates if c.replica_id not in exclude),
        key=lambda c: (c.outstanding, c.served, c.replica_id),
        default=None,
    )
    return best.replica_id if best is not None else None
