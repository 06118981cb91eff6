"""Whether this store's gateway had given a worker to a customer during a span of time.

The validator lists a miner's idle workers, then issues their challenges a moment later; a
customer of the validator's own gateway may take one of them in between, and the miner then
rightly refuses the challenge (the worker is leased, or busy with a job). Such a refusal is
excused only on the validator's own records of that work: a lease, a started or placed job,
or a service replica on that worker, alive at some moment of the span. A miner's word that
its worker is busy excuses nothing.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.api import JobState
from byteleap.store.models import Job, Lease, ServiceReplica


async def customer_work_on(
    session: AsyncSession, *, miner_hotkey: str, worker_id: str, since: float, until: float
) -> str | None:
    """The first lease, job or service replica on ``worker_id`` (the miner's key for it) that
    was alive at some moment in [since, until], as ``"lease <id>"`` and so on; else None."""
    lease = sa.select(Lease.id).where(
        Lease.miner_hotkey == miner_hotkey,
        Lease.worker_id == worker_id,
        Lease.created_at <= until,
        sa.or_(Lease.ended_at.is_(None), Lease.ended_at >= since),
    )
    # A job holds its worker from placement (scheduled) until it ends; created_at bounds the
    # placement from below, which is all an overlap needs.
    job = sa.select(Job.id).where(
        Job.miner_hotkey == miner_hotkey,
        Job.worker_id == worker_id,
        Job.state != JobState.QUEUED,
        Job.created_at <= until,
        sa.or_(Job.finished_at.is_(None), Job.finished_at >= since),
    )
    replica = sa.select(ServiceReplica.id).where(
        ServiceReplica.miner_hotkey == miner_hotkey,
        ServiceReplica.worker_id == worker_id,
        ServiceReplica.created_at <= until,
        sa.or_(ServiceReplica.ended_at.is_(None), ServiceReplica.ended_at >= since),
    )
    for kind, query in (("lease", lease), ("job", job), ("replica", replica)):
        found = (await session.execute(query.limit(1))).scalar_one_or_none()
        if found is not None:
            return f"{kind} {found}"
    return None
