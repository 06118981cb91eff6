"""Retention: challenges older than the validator's ``challenge_retention_s`` are deleted.

Scoring reads challenges over its windows (the longest is availability's 169 h, and the
config refuses a retention shorter than that), with one exception: a lease's revenue counts
only if its worker passed a challenge shortly before the lease *began* (``first_passes``), and
a lease may have begun weeks ago. So a passed challenge is kept, however old, while it may
still vouch for a lease whose receipts are younger than the retention. Nothing else refers to
a challenge row, so nothing else goes with it.

Deletes go in batches, each its own transaction: the first prune of a store that never
pruned may remove tens of millions of rows, and one transaction that long would stall every
writer behind it.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from byteleap.protocol.states import ChallengeStatus
from byteleap.store.engine import Store
from byteleap.store.models import Challenge, Miner, Receipt, Worker

log = logging.getLogger(__name__)

PRUNE_BATCH = 20_000


def _vouching_pass(before: int, lookback_s: float) -> sa.ColumnElement[bool]:
    """True for a passed challenge that may vouch for a lease with a receipt ending at or after
    ``before``: issued at or after ``lookback_s`` before that lease's first stored period."""
    recent, first = aliased(Receipt), aliased(Receipt)
    lease_start = (
        sa.select(sa.func.min(first.period_start))
        .where(
            first.lease_id == recent.lease_id,
            first.miner_hotkey == recent.miner_hotkey,
            first.worker_id == recent.worker_id,
        )
        .scalar_subquery()
    )
    return sa.and_(
        Challenge.status == ChallengeStatus.PASSED,
        sa.exists(
            sa.select(1)
            .select_from(recent)
            .join(Miner, Miner.hotkey == recent.miner_hotkey)
            .join(
                Worker, sa.and_(Worker.miner_id == Miner.id, Worker.worker_key == recent.worker_id)
            )
            .where(
                Worker.id == Challenge.worker_id,
                recent.period_end >= before,
                Challenge.issued_at >= lease_start - lookback_s,
            )
        ),
    )


async def prune_challenges(
    session: AsyncSession, *, before: int, lookback_s: float, limit: int = PRUNE_BATCH
) -> int:
    """Delete up to ``limit`` challenges issued before ``before`` that vouch for no lease with
    a receipt since ``before`` (see the module doc); how many went."""
    doomed = (
        sa.select(Challenge.id)
        .where(Challenge.issued_at < before, sa.not_(_vouching_pass(before, lookback_s)))
        .limit(limit)
    )
    result = await session.execute(
        sa.delete(Challenge)
        .where(Challenge.id.in_(doomed))
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def prune_store(
    store: Store,
    *,
    now: float,
    retention_s: float,
    lookback_s: float,
    batch: int = PRUNE_BATCH,
) -> int:
    """Prune challenges older than ``retention_s`` in batches until none is left; how many."""
    before = int(now - retention_s)
    total = 0
    while True:
        async with store.session() as s:
            gone = await prune_challenges(s, before=before, lookback_s=lookback_s, limit=batch)
        total += gone
        if gone < batch:
            break
    if total:
        log.info("pruned old challenges", extra={"deleted": total, "before": before})
    return total
