"""Lease receipts the validator accepted: recorded once, read back by period for scoring.

A receipt is stored only after ``byteleap.net.receipts.verify_receipt`` accepted it, with
both signatures, so it can be checked again later. :class:`ReceiptRecord` has the same field
names as ``LeaseReceipt``: ``ReceiptRecord(**receipt.model_dump())`` and
``LeaseReceipt.model_validate(dataclasses.asdict(record))`` convert between them (this module
does not need the cloud package's receipt code).

Recording is idempotent on ``receipt_id``: the same receipt again, even signed afresh, is a
no-op (a gateway retrying after a restart); a *different* receipt under an id already stored
is a :class:`~byteleap.store.errors.StoreConflict` (someone is billing a period twice).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from byteleap.store.errors import RecordNotFound, StoreConflict
from byteleap.store.models import Receipt


@dataclass(frozen=True, slots=True)
class ReceiptRecord:
    """A verified lease receipt, field for field (money in integer micro-units)."""

    version: int
    receipt_id: str
    lease_id: str
    netuid: int
    gateway_hotkey: str
    miner_hotkey: str
    worker_id: str
    gpu_model: str
    gpu_count: int
    period_start: int
    period_end: int
    seconds: int
    unit_price_micro: int
    amount_micro: int
    currency: str
    gateway_signature: str
    miner_signature: str


_COLUMNS = [getattr(Receipt, f.name) for f in fields(ReceiptRecord)]
# sr25519 signatures are randomised: a receipt signed again is the same receipt.
_BODY_FIELDS = [f.name for f in fields(ReceiptRecord) if not f.name.endswith("_signature")]


def _insert(session: AsyncSession) -> sa.Insert:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Receipt)


async def record_receipt(session: AsyncSession, record: ReceiptRecord, *, at: int) -> bool:
    """Store a verified receipt; True if it is new, False if it was already stored.

    "Already stored" compares every field but the signatures (the first copy's are kept);
    a receipt that differs in any other field under a stored id raises StoreConflict.
    """
    values = {f.name: getattr(record, f.name) for f in fields(ReceiptRecord)}
    stmt = (
        _insert(session)
        .values(**values, recorded_at=at)
        .on_conflict_do_nothing(index_elements=["receipt_id"])  # type: ignore[attr-defined]
    )
    result = await session.execute(stmt)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return True
    stored = await get_receipt(session, record.receipt_id)
    differing = [name for name in _BODY_FIELDS if getattr(stored, name) != getattr(record, name)]
    if differing:
        raise StoreConflict(
            f"receipt {record.receipt_id} is already stored with different {', '.join(differing)}",
            entity="lease_receipt",
            id=record.receipt_id,
            fields=differing,
        )
    return False


async def get_receipt(session: AsyncSession, receipt_id: str) -> ReceiptRecord:
    row = (
        await session.execute(sa.select(*_COLUMNS).where(Receipt.receipt_id == receipt_id))
    ).first()
    if row is None:
        raise RecordNotFound(f"no receipt {receipt_id}", entity="lease_receipt", id=receipt_id)
    return ReceiptRecord(*row)


async def receipts_in_window(
    session: AsyncSession, since: int, until: int, *, miner_hotkey: str | None = None
) -> list[ReceiptRecord]:
    """Receipts whose period ended in ``(since, until]``, oldest first (optionally one miner's).

    A receipt counts at its period's end; the bounds match scoring's lease window.
    """
    stmt = sa.select(*_COLUMNS).where(Receipt.period_end > since, Receipt.period_end <= until)
    if miner_hotkey is not None:
        stmt = stmt.where(Receipt.miner_hotkey == miner_hotkey)
    rows = await session.execute(stmt.order_by(Receipt.period_end, Receipt.receipt_id))
    return [ReceiptRecord(*row) for row in rows]


async def prune_receipts(session: AsyncSession, *, before: int) -> int:
    """Delete receipts whose period ended before ``before``; how many went."""
    result = await session.execute(sa.delete(Receipt).where(Receipt.period_end < before))
    return int(result.rowcount)  # type: ignore[attr-defined]


LeaseKey = tuple[str, str, str]
"""``(lease_id, miner_hotkey, worker_id)``: receipts are billed per lease and worker."""


async def lease_starts(session: AsyncSession, *, since: int, until: int) -> dict[LeaseKey, int]:
    """For each lease and worker with a receipt ending in ``(since, until]``: the start of its
    earliest stored period, i.e. when that lease began on that worker.

    Scoring anchors the challenge that vouches for a lease there: a leased worker is not
    challenged, so its last pass is the one before the lease began.
    """
    recent = (
        sa.select(Receipt.lease_id, Receipt.miner_hotkey, Receipt.worker_id)
        .where(Receipt.period_end > since, Receipt.period_end <= until)
        .distinct()
        .subquery()
    )
    earlier = aliased(Receipt)
    first = (
        sa.select(sa.func.min(earlier.period_start))
        .where(
            earlier.lease_id == recent.c.lease_id,
            earlier.miner_hotkey == recent.c.miner_hotkey,
            earlier.worker_id == recent.c.worker_id,
        )
        .scalar_subquery()
    )
    stmt = sa.select(recent.c.lease_id, recent.c.miner_hotkey, recent.c.worker_id, first)
    return {
        (lease, miner, worker): int(start)
        for lease, miner, worker, start in await session.execute(stmt)
    }
