"""The store's guard on status moves: a change the state tables in ``byteleap.protocol.states``
do not list raises :class:`IllegalTransition` and writes nothing."""

from __future__ import annotations

from byteleap.protocol.states import (
    CHALLENGE_TRANSITIONS,
    WORKER_TRANSITIONS,
    ChallengeStatus,
    WorkerState,
)
from byteleap.store.errors import IllegalTransition


def check_challenge_transition(
    current: ChallengeStatus, new: ChallengeStatus, *, challenge_id: str
) -> None:
    """Raise :class:`IllegalTransition` unless ``current → new`` is in the table."""
    if new not in CHALLENGE_TRANSITIONS[current]:
        why = "it is terminal" if current.is_terminal else "that move is not allowed"
        raise IllegalTransition(
            f"challenge {challenge_id}: cannot go from {current} to {new} ({why})",
            entity="challenge",
            id=challenge_id,
            current=str(current),
            new=str(new),
        )


def check_worker_transition(current: WorkerState, new: WorkerState, *, worker_id: int) -> None:
    """Raise :class:`IllegalTransition` unless ``current → new`` is allowed (same: no-op)."""
    if new != current and new not in WORKER_TRANSITIONS[current]:
        raise IllegalTransition(
            f"worker {worker_id}: cannot go from {current} to {new}",
            entity="worker",
            id=worker_id,
            current=str(current),
            new=str(new),
        )
