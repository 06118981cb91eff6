"""The gateway's leases in the store: reserved workers, their end, and their billing.

A lease is ``active`` until it is released, expires or fails (``LEASE_TRANSITIONS``); an
ended lease is final and its record refuses every further change
(:class:`IllegalTransition`), except one: the billing of its final period.

Billing is per second and moves forward only: each :func:`record_billing` call advances
``billed_until`` (never backwards, never past ``ends_at``; for an ended lease never past
``ended_at`` either), adds to ``cost`` and counts one receipt. While active it may be
called any number of times; after the lease ended exactly once more (the final period),
which marks it ``settled``.

Every write is guarded by what it was computed from (compare and swap), so two gateway
tasks ending, extending or billing the same lease at once cannot both win.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, fields

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.api import LEASE_TRANSITIONS, LeaseState
from byteleap.store.errors import AlreadyBilled, IllegalTransition, RecordNotFound, StoreConflict
from byteleap.store.models import Lease

# A row changed by another writer between our read and our guarded write: read again.
_RETRIES = 20


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    id: str
    tenant_id: int
    state: LeaseState
    spec_json: str
    worker_id: str
    miner_hotkey: str
    gpu_model: str
    gpu_count: int
    price_per_s: float
    unit_price_micro: int  # micro-units per GPU-second (or per core-second)
    created_at: float
    ends_at: float
    ended_at: float | None
    billed_until: float
    cost: float
    receipts: int
    #: The final period after the end was billed; nothing more will be.
    settled: bool = False
    #: The worker's Ed25519 key (hex) as listed when the lease was placed: its liveness
    #: heartbeats must be signed by it (None: a lease stored before keys were kept).
    worker_public_key: str | None = None


_LEASE_COLUMNS = [getattr(Lease, f.name) for f in fields(LeaseRecord)]


def _check_finite(value: float, what: str, *, non_negative: bool = False) -> None:
    if not math.isfinite(value) or (non_negative and value < 0):
        bound = " and >= 0" if non_negative else ""
        raise ValueError(f"{what} must be finite{bound}, not {value!r}")


def _insert(s: AsyncSession) -> sa.Insert:
    dialect = s.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Lease)


async def insert_lease(s: AsyncSession, lease: LeaseRecord) -> LeaseRecord:
    """Store a new lease; :class:`StoreConflict` if its id is taken."""
    for what in ("price_per_s", "cost"):
        _check_finite(getattr(lease, what), what, non_negative=True)
    for what in ("created_at", "ends_at", "billed_until"):
        _check_finite(getattr(lease, what), what)
    values = {f.name: getattr(lease, f.name) for f in fields(LeaseRecord)}
    values["state"] = LeaseState(lease.state)
    # Do-nothing on conflict: the transaction stays usable after a clash.
    stmt = _insert(s).values(**values).on_conflict_do_nothing()  # type: ignore[attr-defined]
    result = await s.execute(stmt)
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise StoreConflict(f"lease id {lease.id} is taken", entity="lease", id=lease.id)
    return await get_lease(s, lease.id)


async def get_lease(s: AsyncSession, lease_id: str, *, tenant_id: int | None = None) -> LeaseRecord:
    """A lease; :class:`RecordNotFound` if there is none, or it is another tenant's."""
    stmt = sa.select(*_LEASE_COLUMNS).where(Lease.id == lease_id)
    if tenant_id is not None:
        stmt = stmt.where(Lease.tenant_id == tenant_id)
    row = (await s.execute(stmt)).first()
    if row is None:  # the same answer either way: another tenant's lease is not disclosed
        raise RecordNotFound(f"no lease {lease_id}", entity="lease", id=lease_id)
    return LeaseRecord(*row)


async def list_leases(
    s: AsyncSession,
    *,
    tenant_id: int | None = None,
    states: Collection[LeaseState] | None = None,
    limit: int = 100,
) -> list[LeaseRecord]:
    """Leases, newest first, optionally one tenant's / in ``states``."""
    stmt = sa.select(*_LEASE_COLUMNS)
    if tenant_id is not None:
        stmt = stmt.where(Lease.tenant_id == tenant_id)
    if states is not None:
        stmt = stmt.where(Lease.state.in_([LeaseState(x) for x in states]))
    stmt = stmt.order_by(Lease.created_at.desc(), Lease.id.desc()).limit(limit)
    return [LeaseRecord(*row) for row in await s.execute(stmt)]


async def count_leases(s: AsyncSession, tenant_id: int, states: Collection[LeaseState]) -> int:
    """How many of a tenant's leases are in ``states`` (for quotas)."""
    if not states:
        return 0
    stmt = (
        sa.select(sa.func.count())
        .select_from(Lease)
        .where(Lease.tenant_id == tenant_id, Lease.state.in_([LeaseState(x) for x in states]))
    )
    return int(await s.scalar(stmt) or 0)


def check_lease_transition(current: LeaseState, new: LeaseState, *, lease_id: str) -> None:
    """Raise :class:`IllegalTransition` unless ``current → new`` is in ``LEASE_TRANSITIONS``."""
    if new not in LEASE_TRANSITIONS[current]:
        why = "it has ended" if current.is_terminal else "that move is not allowed"
        raise IllegalTransition(
            f"lease {lease_id}: cannot go from {current} to {new} ({why})",
            entity="lease",
            id=lease_id,
            current=str(current),
            new=str(new),
        )


def _ended(lease: LeaseRecord, doing: str) -> IllegalTransition:
    return IllegalTransition(
        f"lease {lease.id} ended ({lease.state}); cannot {doing}",
        entity="lease",
        id=lease.id,
        current=str(lease.state),
    )


async def end_lease(s: AsyncSession, lease_id: str, state: LeaseState, *, at: float) -> LeaseRecord:
    """End an active lease in a terminal ``state`` at ``at``; it ends once, whoever races."""
    state = LeaseState(state)
    _check_finite(at, "at")
    current = await get_lease(s, lease_id)
    for _ in range(_RETRIES):
        check_lease_transition(current.state, state, lease_id=lease_id)
        result = await s.execute(
            sa.update(Lease)
            .where(Lease.id == lease_id, Lease.state == current.state)
            .values(state=state, ended_at=at)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return await get_lease(s, lease_id)
        current = await get_lease(s, lease_id)
    raise StoreConflict(f"lease {lease_id}: state kept changing", entity="lease", id=lease_id)


async def extend_lease(s: AsyncSession, lease_id: str, *, ends_at: float) -> LeaseRecord:
    """Push an active lease's end back to ``ends_at`` (later than now's end: ValueError)."""
    _check_finite(ends_at, "ends_at")
    for _ in range(_RETRIES):
        lease = await get_lease(s, lease_id)
        if lease.state.is_terminal:
            raise _ended(lease, "extend it")
        if ends_at <= lease.ends_at:
            raise ValueError(
                f"lease {lease_id}: new end {ends_at} is not later than {lease.ends_at}"
            )
        result = await s.execute(
            sa.update(Lease)
            .where(
                Lease.id == lease_id,
                Lease.state == LeaseState.ACTIVE,
                Lease.ends_at == lease.ends_at,
            )
            .values(ends_at=ends_at)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return await get_lease(s, lease_id)
    raise StoreConflict(f"lease {lease_id}: its end kept changing", entity="lease", id=lease_id)


def _check_billing(lease: LeaseRecord, billed_until: float) -> None:
    if lease.settled:
        raise _ended(lease, "bill it again: its final period is billed")
    if billed_until < lease.billed_until:
        raise ValueError(
            f"lease {lease.id}: billing cannot go back from {lease.billed_until} to {billed_until}"
        )
    limit = lease.ends_at
    if lease.state.is_terminal and lease.ended_at is not None:
        limit = min(limit, lease.ended_at)
    if billed_until > limit:
        raise ValueError(f"lease {lease.id}: cannot bill until {billed_until}, past {limit}")


async def record_billing(
    s: AsyncSession,
    lease_id: str,
    *,
    billed_until: float,
    cost_delta: float,
    period_start: float | None = None,
) -> LeaseRecord:
    """Bill a lease up to ``billed_until``: add ``cost_delta`` and count one receipt.

    While active, any number of times; once it ended, exactly once more (up to its end),
    which settles it. Backwards or past the end: ValueError; settled: IllegalTransition.
    ``period_start`` (the whole second billing started from) must still be where the lease's
    billing stands, or :class:`AlreadyBilled`: another gateway billed that period first.
    """
    _check_finite(billed_until, "billed_until")
    _check_finite(cost_delta, "cost_delta", non_negative=True)
    for _ in range(_RETRIES):
        lease = await get_lease(s, lease_id)
        if period_start is not None and math.floor(lease.billed_until) != period_start:
            raise AlreadyBilled(
                f"lease {lease_id}: billed from {lease.billed_until}, not {period_start}",
                entity="lease",
                id=lease_id,
            )
        _check_billing(lease, billed_until)
        # Every billing bumps receipts, so (state, receipts) pins the row we checked.
        result = await s.execute(
            sa.update(Lease)
            .where(
                Lease.id == lease_id,
                Lease.state == lease.state,
                Lease.receipts == lease.receipts,
            )
            .values(
                billed_until=billed_until,
                cost=lease.cost + cost_delta,
                receipts=lease.receipts + 1,
                settled=lease.state.is_terminal,
            )
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return await get_lease(s, lease_id)
    raise StoreConflict(f"lease {lease_id}: billing kept changing", entity="lease", id=lease_id)
