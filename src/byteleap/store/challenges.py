"""Challenges: recorded when issued, advanced through the status table, read for scoring.

A challenge is written (with its seed) before it is sent, so a restarted
validator finds every challenge it ever issued; :func:`abandon_open_challenges`
closes the ones a crash left in flight without blaming the worker.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.states import ChallengeStatus
from byteleap.store.bulk import chunked, copy_rows
from byteleap.store.errors import RecordNotFound
from byteleap.store.models import Challenge
from byteleap.store.transitions import check_challenge_transition


@dataclass(frozen=True, slots=True)
class NewChallenge:
    id: str
    worker_id: int
    miner_id: int
    profile: str
    n: int
    seed: str  # hex
    issued_at: int
    deadline_at: int
    claimed_gpu: str | None = None
    rtt_s: float | None = None


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    id: str
    worker_id: int
    miner_id: int
    profile: str
    n: int
    seed: str
    status: ChallengeStatus
    failure_reason: str | None
    claimed_gpu: str | None
    root: str | None
    issued_at: int
    deadline_at: int
    finished_at: int | None
    rtt_s: float | None
    commit_s: float | None
    compute_s: float | None
    throughput: float | None


_RECORD_COLUMNS = [getattr(Challenge, f.name) for f in fields(ChallengeRecord)]


class ChallengeRow(NamedTuple):
    """The slice of a challenge that scoring reads, as a plain tuple (fast in bulk)."""

    worker_id: int
    miner_id: int
    status: ChallengeStatus
    failure_reason: str | None
    issued_at: int
    throughput: float | None


async def record_challenge(session: AsyncSession, new: NewChallenge) -> ChallengeRecord:
    """Store a challenge as ISSUED; do this before sending it."""
    session.add(Challenge(**_issued_values(new)))
    await session.flush()
    return await get_challenge(session, new.id)


def _issued_values(new: NewChallenge) -> dict[str, object]:
    values = {f.name: getattr(new, f.name) for f in fields(NewChallenge)}
    values["status"] = ChallengeStatus.ISSUED
    return values


async def get_challenge(session: AsyncSession, challenge_id: str) -> ChallengeRecord:
    row = (
        await session.execute(sa.select(*_RECORD_COLUMNS).where(Challenge.id == challenge_id))
    ).first()
    if row is None:
        raise RecordNotFound(f"no challenge {challenge_id}", entity="challenge", id=challenge_id)
    return ChallengeRecord(*row)


async def advance_challenge(
    session: AsyncSession,
    challenge_id: str,
    status: ChallengeStatus,
    *,
    at: int,
    failure_reason: str | None = None,
    root: str | None = None,
    rtt_s: float | None = None,
    commit_s: float | None = None,
    compute_s: float | None = None,
    throughput: float | None = None,
) -> ChallengeRecord:
    """Move a challenge to ``status`` if the transition table allows it.

    A terminal status sets ``finished_at``; failures need a ``failure_reason``,
    a pass needs its ``throughput``. Given fields overwrite, omitted ones stay.
    """
    current = await get_challenge(session, challenge_id)
    check_challenge_transition(current.status, status, challenge_id=challenge_id)
    if status == ChallengeStatus.PASSED and throughput is None:
        raise ValueError("a passed challenge needs its verified throughput")
    if status.is_terminal and status != ChallengeStatus.PASSED and not failure_reason:
        raise ValueError(f"status {status} needs a failure_reason")
    given = {
        "failure_reason": failure_reason,
        "root": root,
        "rtt_s": rtt_s,
        "commit_s": commit_s,
        "compute_s": compute_s,
        "throughput": throughput,
    }
    values: dict[str, object] = {k: v for k, v in given.items() if v is not None}
    values["status"] = status
    if status.is_terminal:
        values["finished_at"] = at
    # Guarded by the status we checked, so a concurrent writer cannot slip past the table.
    result = await session.execute(
        sa.update(Challenge)
        .where(Challenge.id == challenge_id, Challenge.status == current.status)
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        latest = await get_challenge(session, challenge_id)
        check_challenge_transition(latest.status, status, challenge_id=challenge_id)
    return await get_challenge(session, challenge_id)


async def open_challenges(session: AsyncSession) -> list[ChallengeRecord]:
    """Challenges not yet in a terminal status (in flight, or left by a crash)."""
    open_states = [s for s in ChallengeStatus if not s.is_terminal]
    stmt = (
        sa.select(*_RECORD_COLUMNS)
        .where(Challenge.status.in_(open_states))
        .order_by(Challenge.issued_at, Challenge.id)
    )
    return [ChallengeRecord(*row) for row in (await session.execute(stmt))]


async def abandon_open_challenges(
    session: AsyncSession, *, at: int, reason: str = "validator_restart"
) -> int:
    """Close every open challenge as ABANDONED (not the worker's fault); returns how many."""
    open_states = [s for s in ChallengeStatus if not s.is_terminal]
    for state in open_states:  # keep the rule in one place: the table must allow it
        check_challenge_transition(state, ChallengeStatus.ABANDONED, challenge_id="*")
    result = await session.execute(
        sa.update(Challenge)
        .where(Challenge.status.in_(open_states))
        .values(status=ChallengeStatus.ABANDONED, failure_reason=reason, finished_at=at)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


_ROW_SQL = (
    "SELECT worker_id, miner_id, status, failure_reason, issued_at, throughput "
    "FROM challenges WHERE issued_at >= $1 AND issued_at < $2"
)
_STATUS_BY_VALUE = {s.value: s for s in ChallengeStatus}


async def challenge_rows(session: AsyncSession, *, since: int, until: int) -> list[ChallengeRow]:
    """Challenges issued in ``[since, until)``, as plain rows for scoring.

    On PostgreSQL this reads through the driver directly: a full scoring window
    holds about a million rows, and SQLAlchemy's per-row result processing would
    cost more than the query.
    """
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        records = await driver.fetch(_ROW_SQL, since, until)
        status = _STATUS_BY_VALUE.__getitem__
        return [ChallengeRow(w, m, status(st), fr, at, tp) for w, m, st, fr, at, tp in records]
    c = Challenge
    stmt = sa.select(
        c.worker_id, c.miner_id, c.status, c.failure_reason, c.issued_at, c.throughput
    ).where(c.issued_at >= since, c.issued_at < until)
    return [ChallengeRow._make(row) for row in await session.execute(stmt)]


@dataclass(frozen=True, slots=True)
class WorkerChallengeSummary:
    """One worker's challenges in a window, aggregated in SQL: what scoring needs."""

    worker_id: int
    miner_id: int
    counts: dict[ChallengeStatus, int]
    last_failed_at: int | None  # newest verified-wrong answer (status FAILED)
    throughputs: tuple[float, ...]  # verified throughput of each pass, ascending


def _summary_columns(dialect: str) -> list[sa.ColumnElement[object]]:
    c = Challenge
    counts = [
        sa.func.count().filter(c.status == status).label(status.value) for status in ChallengeStatus
    ]
    passed = sa.and_(c.status == ChallengeStatus.PASSED, c.throughput.is_not(None))
    if dialect == "postgresql":
        tps = sa.func.array_agg(aggregate_order_by(c.throughput, c.throughput)).filter(passed)
    else:
        tps = sa.func.json_group_array(c.throughput).filter(passed)
    last_failed = sa.func.max(c.issued_at).filter(c.status == ChallengeStatus.FAILED)
    return [c.worker_id, c.miner_id, last_failed, tps, *counts]  # type: ignore[list-item]


async def challenge_summaries(
    session: AsyncSession, *, since: int, until: int
) -> list[WorkerChallengeSummary]:
    """Per-worker counts by status, last verified failure and sorted pass throughputs
    for challenges issued in ``[since, until)``: one row per worker instead of one per
    challenge, so a full-scale window reads in well under a second."""
    conn = await session.connection()
    dialect = conn.dialect.name
    stmt = (
        sa.select(*_summary_columns(dialect))
        .where(Challenge.issued_at >= since, Challenge.issued_at < until)
        .group_by(Challenge.worker_id, Challenge.miner_id)
        .order_by(Challenge.worker_id)
    )
    out = []
    rows: Any = await session.execute(stmt)
    for worker_id, miner_id, last_failed, tps, *counts in rows:
        values = tuple(tps or ()) if dialect == "postgresql" else tuple(sorted(json.loads(tps)))
        out.append(
            WorkerChallengeSummary(
                worker_id,
                miner_id,
                dict(zip(ChallengeStatus, counts, strict=True)),
                last_failed,
                values,
            )
        )
    return out


# A compound SELECT of this many terms stays under SQLite's limit of 500.
_FIRST_PASS_CHUNK = 200


async def first_passes(
    session: AsyncSession, starts: Iterable[tuple[int, int]]
) -> dict[tuple[int, int], int]:
    """For each ``(worker id, since)``: when the worker's first passed challenge issued at or
    after ``since`` was issued; pairs with none are left out.

    One indexed lookup per pair (``ix_challenges_worker_issued``), so a worker leased for
    weeks costs no more than one leased for minutes.
    """
    c = Challenge
    found: dict[tuple[int, int], int] = {}
    for batch in chunked(sorted(set(starts)), _FIRST_PASS_CHUNK):
        terms = [
            sa.select(
                sa.literal(worker, sa.Integer).label("worker"),
                sa.literal(since, sa.BigInteger).label("since"),
                sa.select(sa.func.min(c.issued_at))
                .where(
                    c.worker_id == worker,
                    c.status == ChallengeStatus.PASSED,
                    c.issued_at >= since,
                )
                .scalar_subquery()
                .label("first"),
            )
            for worker, since in batch
        ]
        stmt = terms[0] if len(terms) == 1 else sa.union_all(*terms)
        for worker, since, first in await session.execute(stmt):
            if first is not None:
                found[(int(worker), int(since))] = int(first)
    return found


async def bulk_insert_challenges(session: AsyncSession, records: Iterable[ChallengeRecord]) -> int:
    """Insert finished (or any) challenge records at once: synthetic history, imports."""
    columns = [f.name for f in fields(ChallengeRecord)]
    status_at = columns.index("status")

    def as_row(r: ChallengeRecord) -> tuple[object, ...]:
        row = [getattr(r, name) for name in columns]  # not astuple(): it deep-copies
        row[status_at] = ChallengeStatus(row[status_at]).value
        return tuple(row)

    return await copy_rows(session, Challenge.__table__, columns, map(as_row, records))  # type: ignore[arg-type]
