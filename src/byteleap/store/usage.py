"""What a tenant's ledger adds up to over a window: per billed item and per UTC day.

Read-only sums over ``tenant_ledger`` (``money`` writes it: one row per charge or credit, the
item's id in ``job_id``). A service is billed per replica; its replicas' rows are summed under
the service, the item its tenant knows. A refund is its job's: it lowers the job's cost.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.elements import ColumnElement

from byteleap.store.models import LedgerEntry, Service, ServiceReplica

DAY_S = 86_400

#: The kind of billed item each ledger reason belongs to; other reasons are their own kind.
KIND_OF_REASON = {
    "job": "job",
    "lease": "lease",
    "service": "service",
    "validation_refund": "job",
}


def kind_of(reason: str) -> str:
    return KIND_OF_REASON.get(reason, reason)


@dataclass(frozen=True, slots=True)
class ItemUsage:
    """One item's rows in the window: charges (>= 0) and credits (>= 0) apart."""

    item_id: str
    kind: str
    charged: float
    refunded: float
    entries: int
    first_at: float
    last_at: float


@dataclass(frozen=True, slots=True)
class DayUsage:
    """One UTC day's rows of one kind of item; ``day`` counts days since the epoch."""

    day: int
    kind: str
    charged: float
    refunded: float


def _charged() -> ColumnElement[float]:
    return sa.func.coalesce(
        sa.func.sum(sa.case((LedgerEntry.amount < 0, -LedgerEntry.amount), else_=0.0)), 0.0
    )


def _refunded() -> ColumnElement[float]:
    return sa.func.coalesce(
        sa.func.sum(sa.case((LedgerEntry.amount > 0, LedgerEntry.amount), else_=0.0)), 0.0
    )


def _window(tenant_id: int, since: float, until: float | None) -> list[ColumnElement[bool]]:
    """``[since, until)``; no end with ``until`` None (up to now, even a row just written)."""
    bounds = [LedgerEntry.tenant_id == tenant_id, LedgerEntry.at >= since]
    return bounds if until is None else [*bounds, LedgerEntry.at < until]


async def usage_by_item(
    s: AsyncSession, tenant_id: int, *, since: float, until: float | None, limit: int
) -> list[ItemUsage]:
    """Items charged or credited in ``[since, until)``, the last charged first; at most
    ``limit``."""
    # Grouped by an expression without bound parameters: PostgreSQL must see the select's and
    # the GROUP BY's expressions as the same one.
    item = sa.func.coalesce(ServiceReplica.service_id, LedgerEntry.job_id, LedgerEntry.reason)
    last_at = sa.func.max(LedgerEntry.at)
    stmt = (
        sa.select(
            item,
            sa.func.max(LedgerEntry.reason),
            _charged(),
            _refunded(),
            sa.func.count(),
            sa.func.min(LedgerEntry.at),
            last_at,
        )
        .select_from(LedgerEntry)
        .outerjoin(
            ServiceReplica,
            sa.and_(LedgerEntry.reason == "service", ServiceReplica.id == LedgerEntry.job_id),
        )
        .where(*_window(tenant_id, since, until))
        .group_by(item)
        .order_by(last_at.desc(), item)
        .limit(limit)
    )
    return [
        ItemUsage(str(i), kind_of(str(r)), float(c), float(f), int(n), float(a), float(b))
        for i, r, c, f, n, a, b in await s.execute(stmt)
    ]


async def usage_by_day(
    s: AsyncSession, tenant_id: int, *, since: float, until: float | None
) -> list[DayUsage]:
    """Each UTC day's sums in ``[since, until)`` by kind of item, oldest first."""
    day = _day(s)
    stmt = (
        sa.select(day, LedgerEntry.reason, _charged(), _refunded())
        .where(*_window(tenant_id, since, until))
        .group_by(day, LedgerEntry.reason)
        .order_by(day)
    )
    merged: dict[tuple[int, str], tuple[float, float]] = {}
    for d, reason, charged, refunded in await s.execute(stmt):
        key = (int(d), kind_of(str(reason)))
        was = merged.get(key, (0.0, 0.0))
        merged[key] = (was[0] + float(charged), was[1] + float(refunded))
    return [DayUsage(d, k, c, r) for (d, k), (c, r) in sorted(merged.items())]


def _day(s: AsyncSession) -> ColumnElement[int]:
    """The day an entry's ``at`` falls on, counted from the epoch (``at`` is never negative)."""
    days = LedgerEntry.at / sa.literal_column(str(DAY_S))
    if s.get_bind().dialect.name == "sqlite":
        return sa.cast(days, sa.Integer)  # truncates, which for a positive number is floor
    return sa.cast(sa.func.floor(days), sa.Integer)  # PostgreSQL's cast rounds


async def service_names(s: AsyncSession, tenant_id: int, ids: Collection[str]) -> dict[str, str]:
    """The names of the tenant's services among ``ids``."""
    if not ids:
        return {}
    stmt = sa.select(Service.id, Service.name).where(
        Service.tenant_id == tenant_id, Service.id.in_(list(ids))
    )
    return {str(i): str(n) for i, n in await s.execute(stmt)}


__all__ = [
    "DAY_S",
    "KIND_OF_REASON",
    "DayUsage",
    "ItemUsage",
    "kind_of",
    "service_names",
    "usage_by_day",
    "usage_by_item",
]
