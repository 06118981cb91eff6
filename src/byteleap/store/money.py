"""A tenant's money: its balance, the holds placed against it, and the ledger of every move.

The rules (issue 17, "money that balances"):

- **Holds.** Work is admitted only with its worst case set aside: a job's price × timeout,
  a lease's term, a service replica's next billing period. :func:`hold` places (or grows)
  the hold named by the billed item's id, and only while the balance not yet held covers
  it. Holds are placed under a lock on the tenant's row, so concurrent submits cannot
  spend the same money twice.
- **Charges.** :func:`charge` takes an item's cost first from its own hold, then from what
  is not held. It never clamps: a charge that neither covers is refused whole
  (:class:`InsufficientFunds`) and changes nothing. Billing code caps an item's cost at
  its hold *before* charging (a job never costs more than its worst case), so the cost it
  records and the amount charged are the same number.
- **Release.** :func:`release` drops what is left of a hold when its item ends.
- **Ledger.** Every change of the balance writes one ledger row in the same transaction,
  so the balance is always the opening balance plus the ledger's sum, and the sum of the
  charges is the sum of the billed items' costs.

``balance - sum(holds)`` is what new work may use (:func:`available`); it is never negative.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.store.errors import RecordNotFound, StoreError
from byteleap.store.models import LedgerEntry, Tenant, TenantHold


class InsufficientFunds(StoreError):
    """The balance not yet held does not cover a hold or a charge; nothing was changed."""

    reason = "insufficient_funds"


@dataclass(frozen=True, slots=True)
class LedgerRecord:
    """One balance change: ``amount`` < 0 for a charge, > 0 for a credit."""

    id: int
    tenant_id: int
    amount: float
    balance_after: float
    reason: str
    job_id: str | None
    at: float


_LEDGER_COLUMNS = [getattr(LedgerEntry, f.name) for f in fields(LedgerRecord)]


def check_amount(amount: float, what: str = "amount") -> None:
    if not math.isfinite(amount) or amount < 0:
        raise ValueError(f"{what} must be finite and >= 0, not {amount!r}")


async def lock_tenant(s: AsyncSession, tenant_id: int) -> float:
    """Take the tenant's row lock for the rest of the transaction; its balance.

    An UPDATE, not SELECT … FOR UPDATE: SQLite ignores FOR UPDATE, while an UPDATE takes
    its write lock there and the row lock on PostgreSQL, so a second transaction placing a
    hold waits here and then reads the first one's hold (READ COMMITTED re-reads per
    statement) instead of both reading the same free money.
    """
    result = await s.execute(
        sa.update(Tenant)
        .where(Tenant.id == tenant_id)
        .values(balance=Tenant.balance)
        .returning(Tenant.balance)
    )
    balance = result.scalar_one_or_none()
    if balance is None:
        raise RecordNotFound(f"no tenant {tenant_id}", entity="tenant", id=tenant_id)
    return float(balance)


async def _held(s: AsyncSession, tenant_id: int) -> float:
    total = await s.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(TenantHold.amount), 0.0)).where(
            TenantHold.tenant_id == tenant_id
        )
    )
    return float(total or 0.0)


async def available(s: AsyncSession, tenant_id: int) -> float:
    """The balance that no hold has set aside (what new work may be admitted against)."""
    balance = await s.scalar(sa.select(Tenant.balance).where(Tenant.id == tenant_id))
    if balance is None:
        raise RecordNotFound(f"no tenant {tenant_id}", entity="tenant", id=tenant_id)
    return max(0.0, float(balance) - await _held(s, tenant_id))


async def balance_and_held(s: AsyncSession, tenant_id: int) -> tuple[float, float]:
    """A tenant's balance and what its holds set aside, read without a lock (for showing)."""
    balance = await s.scalar(sa.select(Tenant.balance).where(Tenant.id == tenant_id))
    if balance is None:
        raise RecordNotFound(f"no tenant {tenant_id}", entity="tenant", id=tenant_id)
    return float(balance), await _held(s, tenant_id)


async def held_for(s: AsyncSession, item_id: str) -> float:
    """What is still held for ``item_id`` (0 when it has no hold)."""
    amount = await s.scalar(sa.select(TenantHold.amount).where(TenantHold.item_id == item_id))
    return float(amount or 0.0)


async def hold(s: AsyncSession, tenant_id: int, item_id: str, amount: float, *, at: float) -> float:
    """Set ``amount`` more aside for ``item_id``; the item's hold after it.

    :class:`InsufficientFunds` (and nothing held) when the balance not yet held is short.
    """
    check_amount(amount)
    balance = await lock_tenant(s, tenant_id)
    free = balance - await _held(s, tenant_id)
    if amount > free:
        raise InsufficientFunds(
            f"the balance not yet held ({max(0.0, free):.6f}) does not cover {amount:.6f}",
            tenant=tenant_id,
            item=item_id,
        )
    row = await s.get(TenantHold, item_id)
    if row is None:
        s.add(TenantHold(item_id=item_id, tenant_id=tenant_id, amount=amount, created_at=at))
        await s.flush()
        return amount
    if row.tenant_id != tenant_id:
        raise ValueError(f"{item_id} is held for another tenant")
    row.amount += amount
    await s.flush()
    return row.amount


async def release(s: AsyncSession, item_id: str) -> float:
    """Drop what is left of ``item_id``'s hold (its item ended); the amount released."""
    row = await s.get(TenantHold, item_id)
    if row is None:
        return 0.0
    await lock_tenant(s, row.tenant_id)
    left = row.amount
    await s.delete(row)
    await s.flush()
    return left


async def payable(s: AsyncSession, tenant_id: int, item_id: str, cost: float) -> float:
    """``cost``, capped at what ``item_id`` can be charged (its hold plus the balance not
    held): billing records this as the item's cost and charges exactly it, so no charge is
    ever clamped behind the ledger's back. Only work admitted before holds existed, or a
    receipt's rounding, can meet the cap."""
    return min(cost, await held_for(s, item_id) + await available(s, tenant_id))


async def _write_ledger(
    s: AsyncSession,
    tenant_id: int,
    amount: float,
    balance_after: float,
    *,
    reason: str,
    job_id: str | None,
    at: float,
) -> None:
    s.add(
        LedgerEntry(
            tenant_id=tenant_id,
            amount=amount,
            balance_after=balance_after,
            reason=reason,
            job_id=job_id,
            at=at,
        )
    )
    await s.flush()


async def _set_balance(s: AsyncSession, tenant_id: int, balance: float) -> None:
    await s.execute(sa.update(Tenant).where(Tenant.id == tenant_id).values(balance=balance))


async def charge(
    s: AsyncSession, tenant_id: int, amount: float, *, reason: str, job_id: str | None, at: float
) -> float:
    """Charge ``amount`` for the billed item ``job_id``: from its hold first, then from the
    balance not held; the amount charged (always ``amount``).

    :class:`InsufficientFunds` (nothing changed) when the two together fall short. Every
    charge writes a ledger row, 0 included, so every billing decision leaves a trace.
    """
    check_amount(amount)
    balance = await lock_tenant(s, tenant_id)
    row = None if job_id is None else await s.get(TenantHold, job_id)
    if row is not None and row.tenant_id != tenant_id:
        row = None
    from_hold = min(amount, row.amount) if row is not None else 0.0
    free = balance - await _held(s, tenant_id)
    if amount - from_hold > free:
        raise InsufficientFunds(
            f"{reason} {job_id}: {amount:.6f} is more than its hold ({from_hold:.6f}) "
            f"and the balance not held ({max(0.0, free):.6f})",
            tenant=tenant_id,
            item=job_id,
        )
    if row is not None:
        row.amount -= from_hold  # from_hold <= row.amount: never below zero
    after = balance - amount
    await _set_balance(s, tenant_id, after)
    await _write_ledger(s, tenant_id, -amount, after, reason=reason, job_id=job_id, at=at)
    return amount


async def credit(
    s: AsyncSession, tenant_id: int, amount: float, *, reason: str, job_id: str | None, at: float
) -> float:
    """Raise the balance by ``amount`` (refund, top-up); the new balance."""
    check_amount(amount)
    after = await lock_tenant(s, tenant_id) + amount
    await _set_balance(s, tenant_id, after)
    await _write_ledger(s, tenant_id, amount, after, reason=reason, job_id=job_id, at=at)
    return after


async def ledger(s: AsyncSession, tenant_id: int, *, limit: int = 100) -> list[LedgerRecord]:
    """A tenant's balance changes, newest first."""
    stmt = (
        sa.select(*_LEDGER_COLUMNS)
        .where(LedgerEntry.tenant_id == tenant_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    )
    return [LedgerRecord(*row) for row in await s.execute(stmt)]


__all__ = [
    "InsufficientFunds",
    "LedgerRecord",
    "available",
    "balance_and_held",
    "charge",
    "check_amount",
    "credit",
    "held_for",
    "hold",
    "ledger",
    "payable",
    "release",
]
