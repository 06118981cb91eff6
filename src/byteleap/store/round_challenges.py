"""A round's challenges written at once: all issued in one statement before any is sent, all
ended in a few once the round is over.

One at a time (``record_challenge``, two ``advance_challenge`` calls) a challenge took about
ten statements, the bulk of a validator's store work in a round. The rules are the same:
every move is checked against the status table, a pass needs its throughput and a failure its
reason, and each update is guarded by the status it was checked from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.states import ChallengeStatus
from byteleap.store.bulk import chunked, copy_rows
from byteleap.store.challenges import NewChallenge
from byteleap.store.errors import RecordNotFound
from byteleap.store.models import Challenge
from byteleap.store.transitions import check_challenge_transition

__all__ = ["ChallengeEnd", "end_challenges", "record_challenges"]

_NEW_COLUMNS = [f.name for f in fields(NewChallenge)]


async def record_challenges(session: AsyncSession, news: Sequence[NewChallenge]) -> int:
    """Store challenges as ISSUED (``record_challenge`` for many); do this before sending them."""
    issued = ChallengeStatus.ISSUED.value
    rows = ((*(getattr(new, name) for name in _NEW_COLUMNS), issued) for new in news)
    table: sa.Table = Challenge.__table__  # type: ignore[assignment]
    return await copy_rows(session, table, [*_NEW_COLUMNS, "status"], rows)


@dataclass(frozen=True, slots=True)
class ChallengeEnd:
    """Where one challenge ended. With ``root`` it is recorded as committed on the way, with
    its timings; fields left None keep what is stored."""

    id: str
    status: ChallengeStatus
    failure_reason: str | None = None
    root: str | None = None
    commit_s: float | None = None
    compute_s: float | None = None
    throughput: float | None = None

    def path(self) -> list[ChallengeStatus]:
        if self.root is None or self.status is ChallengeStatus.COMMITTED:
            return [self.status]
        return [ChallengeStatus.COMMITTED, self.status]


_SET = ("failure_reason", "root", "commit_s", "compute_s", "throughput", "finished_at")


async def end_challenges(session: AsyncSession, ends: Sequence[ChallengeEnd], *, at: int) -> None:
    """Move each challenge along its path (``advance_challenge`` for many); a terminal status
    sets ``finished_at``. Raises ``IllegalTransition`` (nothing is written) or
    ``RecordNotFound`` before any write, as the one-by-one path does on its first bad move."""
    if not ends:
        return
    ids = [end.id for end in ends]
    current = await _statuses(session, ids)
    params = []
    for end in ends:
        if end.id not in current:
            raise RecordNotFound(f"no challenge {end.id}", entity="challenge", id=end.id)
        _check(end)
        step = current[end.id]
        for status in end.path():
            check_challenge_transition(step, status, challenge_id=end.id)
            step = status
        params.append(
            {
                "b_id": end.id,
                "b_from": current[end.id].value,
                "b_status": end.status.value,
                "b_failure_reason": end.failure_reason,
                "b_root": end.root,
                "b_commit_s": end.commit_s,
                "b_compute_s": end.compute_s,
                "b_throughput": end.throughput,
                "b_finished_at": at if end.status.is_terminal else None,
            }
        )
    table: sa.Table = Challenge.__table__  # type: ignore[assignment]
    values: dict[str, object] = {
        name: sa.func.coalesce(sa.bindparam(f"b_{name}", type_=table.c[name].type), table.c[name])
        for name in _SET
    }
    values["status"] = sa.bindparam("b_status")
    # Guarded by the status each move was checked from: a concurrent writer (a restart closing
    # open challenges) cannot slip past the table.
    await session.execute(
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"), table.c.status == sa.bindparam("b_from"))
        .values(values),
        params,
    )
    after = await _statuses(session, ids)
    for end in ends:
        if after[end.id] is not end.status:
            check_challenge_transition(after[end.id], end.status, challenge_id=end.id)


def _check(end: ChallengeEnd) -> None:
    if end.status is ChallengeStatus.PASSED and end.throughput is None:
        raise ValueError("a passed challenge needs its verified throughput")
    if end.status.is_terminal and end.status is not ChallengeStatus.PASSED:
        if not end.failure_reason:
            raise ValueError(f"status {end.status} needs a failure_reason")


async def _statuses(session: AsyncSession, ids: list[str]) -> dict[str, ChallengeStatus]:
    found: dict[str, ChallengeStatus] = {}
    for batch in chunked(ids):
        rows = await session.execute(
            sa.select(Challenge.id, Challenge.status).where(Challenge.id.in_(batch))
        )
        found.update((cid, ChallengeStatus(status)) for cid, status in rows)
    return found
