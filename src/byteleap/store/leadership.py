"""What gateway replicas share through the store: a leader role and their secrets.

Leadership: a named role (the gateway's background passes) held by one
replica at a time, for ``ttl_s`` after its last renewal.

A holder renews well inside its ttl; when it dies, its claim lapses and the next replica to
ask takes the role with a higher ``term``. Work that must not happen twice does not rely on
this alone: it is fenced by the state of the item it changes (a job's state, a lease's
billed period), so a paused old holder that wakes up cannot repeat it.
"""

from __future__ import annotations

import math

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.store.models import GatewayLeadership, GatewaySecret, ServiceLoadReport


def _insert(
    s: AsyncSession, table: type[GatewayLeadership | GatewaySecret | ServiceLoadReport]
) -> sa.Insert:
    dialect = s.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


async def claim(s: AsyncSession, name: str, holder: str, *, now: float, ttl_s: float) -> int | None:
    """Take or renew ``name`` for ``holder`` until ``now + ttl_s``; the term held, or None
    while another holder's claim is still live."""
    if not (math.isfinite(now) and math.isfinite(ttl_s) and ttl_s > 0):
        raise ValueError("now and ttl_s must be finite, ttl_s > 0")
    created = await s.execute(
        _insert(s, GatewayLeadership)
        .values(name=name, holder=holder, term=1, expires_at=now + ttl_s)
        .on_conflict_do_nothing()  # type: ignore[attr-defined]
    )
    if created.rowcount == 1:  # type: ignore[attr-defined]
        return 1
    row = GatewayLeadership
    taken = await s.execute(
        sa.update(row)
        .where(row.name == name, sa.or_(row.holder == holder, row.expires_at < now))
        .values(
            term=sa.case((row.holder == holder, row.term), else_=row.term + 1),
            holder=holder,
            expires_at=now + ttl_s,
        )
        .returning(row.term)
    )
    term = taken.scalar_one_or_none()
    return None if term is None else int(term)


async def resign(s: AsyncSession, name: str, holder: str) -> None:
    """Give ``name`` up now (a clean shutdown), so the next replica need not wait out the ttl."""
    await s.execute(
        sa.update(GatewayLeadership)
        .where(GatewayLeadership.name == name, GatewayLeadership.holder == holder)
        .values(expires_at=0.0)
    )


async def holder_of(s: AsyncSession, name: str, *, now: float) -> str | None:
    """Who holds ``name`` now (None: nobody, or a lapsed claim)."""
    row = (
        await s.execute(
            sa.select(GatewayLeadership.holder, GatewayLeadership.expires_at).where(
                GatewayLeadership.name == name
            )
        )
    ).first()
    return None if row is None or row.expires_at < now else str(row.holder)


async def shared_secret(s: AsyncSession, name: str, proposed: bytes) -> bytes:
    """The secret every replica uses under ``name``: ``proposed`` when none is stored yet
    (the first replica's), else the stored one."""
    await s.execute(
        _insert(s, GatewaySecret).values(name=name, value=proposed).on_conflict_do_nothing()  # type: ignore[attr-defined]
    )
    value = await s.scalar(sa.select(GatewaySecret.value).where(GatewaySecret.name == name))
    assert value is not None
    return bytes(value)


async def report_load(
    s: AsyncSession,
    service_id: str,
    gateway: str,
    *,
    in_flight: float,
    latency_p90_ms: float | None,
    at: float,
) -> None:
    """Record ``gateway``'s current load on ``service_id`` (replacing its last report)."""
    values = {"in_flight": in_flight, "latency_p90_ms": latency_p90_ms, "at": at}
    stmt = _insert(s, ServiceLoadReport).values(service_id=service_id, gateway=gateway, **values)
    await s.execute(
        stmt.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["service_id", "gateway"], set_=values
        )
    )


async def others_load(
    s: AsyncSession, service_id: str, gateway: str, *, since: float
) -> list[tuple[float, float | None]]:
    """The other replicas' reports on ``service_id`` made since ``since``: (in flight, p90)."""
    row = ServiceLoadReport
    stmt = sa.select(row.in_flight, row.latency_p90_ms).where(
        row.service_id == service_id, row.gateway != gateway, row.at >= since
    )
    return [(float(a), b) for a, b in await s.execute(stmt)]


__all__ = ["claim", "holder_of", "others_load", "report_load", "resign", "shared_secret"]
