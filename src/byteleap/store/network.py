"""Read-only aggregates over the whole network, for the gateway's public network view.

Nothing here names a tenant: jobs, leases and services are only counted by state. Every
query is bounded (a time window, a ``limit`` or a ``GROUP BY`` over small domains).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.states import ChallengeStatus
from byteleap.store.models import Challenge, Job, Lease, Miner, Worker

# The services table (migration 0007) may not exist in this store; its state column is
# looked up by these names, first match wins.
SERVICES_TABLE = "services"
_SERVICE_STATE_COLUMNS = ("state", "status")


@dataclass(frozen=True, slots=True)
class WorkerChallengeCounts:
    worker_id: int
    miner_id: int
    counts: dict[ChallengeStatus, int]
    mean_throughput: float | None  # of the passes, FLOP/s


@dataclass(frozen=True, slots=True)
class TimelineCell:
    step: int  # (issued_at - since) // step_s
    status: ChallengeStatus
    count: int


@dataclass(frozen=True, slots=True)
class RecentChallenge:
    id: str
    miner_hotkey: str
    worker_key: str
    profile: str
    n: int
    status: ChallengeStatus
    failure_reason: str | None
    issued_at: int
    finished_at: int | None
    compute_s: float | None
    throughput: float | None


async def challenge_counts(
    s: AsyncSession, *, since: int, until: int
) -> list[WorkerChallengeCounts]:
    """Per worker, challenges issued in ``[since, until)`` by status and mean pass throughput."""
    c = Challenge
    counts = [sa.func.count().filter(c.status == st).label(st.value) for st in ChallengeStatus]
    mean = sa.func.avg(c.throughput).filter(c.status == ChallengeStatus.PASSED)
    stmt = (
        sa.select(c.worker_id, c.miner_id, mean, *counts)
        .where(c.issued_at >= since, c.issued_at < until)
        .group_by(c.worker_id, c.miner_id)
        .order_by(c.worker_id)
    )
    return [
        WorkerChallengeCounts(
            worker_id,
            miner_id,
            dict(zip(ChallengeStatus, (int(n) for n in by_status), strict=True)),
            None if avg is None else float(avg),
        )
        for worker_id, miner_id, avg, *by_status in await s.execute(stmt)
    ]


async def challenge_timeline(
    s: AsyncSession, *, since: int, until: int, step_s: int
) -> list[TimelineCell]:
    """Challenges issued in ``[since, until)`` counted per ``step_s`` slot and status."""
    if step_s <= 0:
        raise ValueError("step_s must be positive")
    c = Challenge
    slot = ((c.issued_at - since) // step_s).label("slot")
    stmt = (
        sa.select(slot, c.status, sa.func.count())
        .where(c.issued_at >= since, c.issued_at < until)
        .group_by(slot, c.status)
        .order_by(slot)
    )
    return [TimelineCell(int(i), status, int(n)) for i, status, n in await s.execute(stmt)]


async def recent_challenges(s: AsyncSession, *, limit: int) -> list[RecentChallenge]:
    """The newest challenges first (no seeds, no roots: what happened, not how to replay it)."""
    c = Challenge
    stmt = (
        sa.select(
            c.id,
            Miner.hotkey,
            Worker.worker_key,
            c.profile,
            c.n,
            c.status,
            c.failure_reason,
            c.issued_at,
            c.finished_at,
            c.compute_s,
            c.throughput,
        )
        .join(Miner, Miner.id == c.miner_id)
        .join(Worker, Worker.id == c.worker_id)
        .order_by(c.issued_at.desc(), c.id.desc())
        .limit(limit)
    )
    return [RecentChallenge(*row) for row in await s.execute(stmt)]


async def job_states(s: AsyncSession) -> dict[str, int]:
    """All tenants' jobs counted by state."""
    stmt = sa.select(Job.state, sa.func.count()).group_by(Job.state)
    return {str(state): int(n) for state, n in await s.execute(stmt)}


async def lease_states(s: AsyncSession) -> dict[str, int]:
    """All tenants' leases counted by state."""
    stmt = sa.select(Lease.state, sa.func.count()).group_by(Lease.state)
    return {str(state): int(n) for state, n in await s.execute(stmt)}


async def service_states(s: AsyncSession) -> dict[str, int] | None:
    """Services counted by state; None when this store has no services table yet."""
    conn = await s.connection()

    def columns(sync_conn: sa.Connection) -> list[str] | None:
        inspector = sa.inspect(sync_conn)
        if not inspector.has_table(SERVICES_TABLE):
            return None
        return [col["name"] for col in inspector.get_columns(SERVICES_TABLE)]

    names = await conn.run_sync(columns)
    if names is None:
        return None
    state = next((n for n in _SERVICE_STATE_COLUMNS if n in names), None)
    table = sa.table(SERVICES_TABLE, *(sa.column(n) for n in names))
    if state is None:
        total = await s.scalar(sa.select(sa.func.count()).select_from(table))
        return {"total": int(total or 0)}
    column = table.c[state]
    rows = await s.execute(sa.select(column, sa.func.count()).group_by(column))
    return {str(value): int(n) for value, n in rows}
