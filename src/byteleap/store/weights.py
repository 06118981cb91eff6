"""Weights history (what was computed and set, per block) and the chain event log."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.store.errors import RecordNotFound
from byteleap.store.models import ChainEvent, WeightEntry, WeightSet


@dataclass(frozen=True, slots=True)
class WeightSetRecord:
    id: int
    netuid: int
    block: int | None
    version_key: int
    computed_at: int
    accepted: bool | None  # None: not submitted yet
    message: str | None
    weights: dict[int, float] = field(default_factory=dict)  # uid → weight


@dataclass(frozen=True, slots=True)
class ChainEventRecord:
    id: int
    at: int
    kind: str
    block: int | None
    hotkey: str | None
    uid: int | None
    payload: dict[str, Any]


async def record_weights(
    session: AsyncSession,
    *,
    netuid: int,
    version_key: int,
    weights: Mapping[int, float],
    computed_at: int,
    block: int | None = None,
    accepted: bool | None = None,
    message: str | None = None,
) -> int:
    """Store one computed weight vector; returns its id."""
    row = WeightSet(
        netuid=netuid,
        block=block,
        version_key=version_key,
        computed_at=computed_at,
        accepted=accepted,
        message=message,
    )
    session.add(row)
    await session.flush()
    if weights:
        await session.execute(
            sa.insert(WeightEntry),
            [{"weight_set_id": row.id, "uid": uid, "weight": w} for uid, w in weights.items()],
        )
    return row.id


async def mark_weights_submitted(
    session: AsyncSession,
    set_id: int,
    *,
    block: int | None,
    accepted: bool,
    message: str | None = None,
) -> None:
    """Record what the chain said about a submitted weight vector."""
    result = await session.execute(
        sa.update(WeightSet)
        .where(WeightSet.id == set_id)
        .values(block=block, accepted=accepted, message=message)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise RecordNotFound(f"no weight set {set_id}", entity="weight_set", id=set_id)


async def weights_history(
    session: AsyncSession, *, limit: int = 20, accepted_only: bool = False
) -> list[WeightSetRecord]:
    """The newest weight sets first, each with its uid → weight map."""
    stmt = sa.select(WeightSet).order_by(WeightSet.id.desc()).limit(limit)
    if accepted_only:
        stmt = stmt.where(WeightSet.accepted.is_(True))
    sets = list(await session.scalars(stmt))
    weights: dict[int, dict[int, float]] = {s.id: {} for s in sets}
    if sets:
        entries = await session.execute(
            sa.select(WeightEntry.weight_set_id, WeightEntry.uid, WeightEntry.weight)
            .where(WeightEntry.weight_set_id.in_(weights))
            .order_by(WeightEntry.uid)
        )
        for set_id, uid, w in entries:
            weights[set_id][uid] = w
    return [
        WeightSetRecord(
            s.id,
            s.netuid,
            s.block,
            s.version_key,
            s.computed_at,
            s.accepted,
            s.message,
            weights[s.id],
        )
        for s in sets
    ]


async def latest_weights(
    session: AsyncSession, *, accepted_only: bool = False
) -> WeightSetRecord | None:
    history = await weights_history(session, limit=1, accepted_only=accepted_only)
    return history[0] if history else None


async def record_chain_event(
    session: AsyncSession,
    kind: str,
    *,
    at: int,
    block: int | None = None,
    hotkey: str | None = None,
    uid: int | None = None,
    payload: Mapping[str, Any] | None = None,
) -> int:
    """Append one chain event (registration, deregistration, weights set, …); returns its id."""
    row = ChainEvent(
        at=at, kind=kind, block=block, hotkey=hotkey, uid=uid, payload=dict(payload or {})
    )
    session.add(row)
    await session.flush()
    return row.id


async def chain_events(
    session: AsyncSession, *, since_at: int | None = None, kind: str | None = None, limit: int = 100
) -> list[ChainEventRecord]:
    """Chain events in time order (oldest first), optionally filtered."""
    stmt = sa.select(ChainEvent).order_by(ChainEvent.at, ChainEvent.id).limit(limit)
    if since_at is not None:
        stmt = stmt.where(ChainEvent.at >= since_at)
    if kind is not None:
        stmt = stmt.where(ChainEvent.kind == kind)
    return [
        ChainEventRecord(e.id, e.at, e.kind, e.block, e.hotkey, e.uid, dict(e.payload))
        for e in await session.scalars(stmt)
    ]
