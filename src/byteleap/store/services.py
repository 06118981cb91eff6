"""The gateway's inference services in the store: services, their replicas and billing.

A replica moves along ``REPLICA_TRANSITIONS`` (starting → running → draining → stopped |
failed); an ended replica's record refuses every change (:class:`IllegalTransition`) but
its billing, which only moves forward and may close the final period once.

Writes of a replica are guarded by the state (and for billing, the receipt count) they were
computed from, so two passes of the gateway cannot both win a move.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass, fields

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.service_spec import REPLICA_TRANSITIONS, ReplicaState, ServiceState
from byteleap.store.errors import AlreadyBilled, IllegalTransition, RecordNotFound, StoreConflict
from byteleap.store.models import Service, ServiceReplica

_RETRIES = 20


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    id: str
    tenant_id: int
    name: str
    state: ServiceState
    spec_json: str
    revision: int
    desired: int
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class ReplicaRecord:
    id: str
    service_id: str
    revision: int
    state: ReplicaState
    worker_id: str
    miner_hotkey: str
    endpoint: str | None
    gpu_model: str
    gpu_count: int
    price_per_s: float
    unit_price_micro: int  # micro-units per GPU- or core-second
    created_at: float
    ended_at: float | None
    billed_until: float
    cost: float
    receipts: int
    error: str | None


_SERVICE_COLUMNS = [getattr(Service, f.name) for f in fields(ServiceRecord)]
_REPLICA_COLUMNS = [getattr(ServiceReplica, f.name) for f in fields(ReplicaRecord)]
_SERVICE_FIELDS = {"spec_json", "revision", "desired", "updated_at", "state"}
_REPLICA_FIELDS = {"endpoint", "error", "ended_at"}


def _finite(value: float, what: str) -> None:
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, not {value!r}")


async def insert_service(s: AsyncSession, service: ServiceRecord) -> ServiceRecord:
    if await s.get(Service, service.id) is not None:
        raise StoreConflict(f"service id {service.id} is taken", entity="service", id=service.id)
    s.add(Service(**{f.name: getattr(service, f.name) for f in fields(ServiceRecord)}))
    await s.flush()
    return await get_service(s, service.id)


async def get_service(
    s: AsyncSession, service_id: str, *, tenant_id: int | None = None
) -> ServiceRecord:
    """A service; :class:`RecordNotFound` if there is none, or it is another tenant's."""
    stmt = sa.select(*_SERVICE_COLUMNS).where(Service.id == service_id)
    if tenant_id is not None:
        stmt = stmt.where(Service.tenant_id == tenant_id)
    row = (await s.execute(stmt)).first()
    if row is None:
        raise RecordNotFound(f"no service {service_id}", entity="service", id=service_id)
    return ServiceRecord(*row)


async def list_services(
    s: AsyncSession,
    *,
    tenant_id: int | None = None,
    states: Collection[ServiceState] | None = None,
    limit: int = 100,
) -> list[ServiceRecord]:
    """Services, newest first."""
    stmt = sa.select(*_SERVICE_COLUMNS)
    if tenant_id is not None:
        stmt = stmt.where(Service.tenant_id == tenant_id)
    if states is not None:
        stmt = stmt.where(Service.state.in_([ServiceState(x) for x in states]))
    stmt = stmt.order_by(Service.created_at.desc(), Service.id.desc()).limit(limit)
    return [ServiceRecord(*row) for row in await s.execute(stmt)]


async def update_service(s: AsyncSession, service_id: str, **values: object) -> ServiceRecord:
    """Change a live service; a deleted one is final (:class:`IllegalTransition`)."""
    unknown = set(values) - _SERVICE_FIELDS
    if unknown:
        raise ValueError(f"not service fields: {sorted(unknown)}")
    result = await s.execute(
        sa.update(Service)
        .where(Service.id == service_id, Service.state != ServiceState.DELETED)
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        current = await get_service(s, service_id)  # RecordNotFound first
        raise IllegalTransition(
            f"service {service_id} is {current.state}; it cannot change",
            entity="service",
            id=service_id,
            current=str(current.state),
        )
    return await get_service(s, service_id)


async def insert_replica(s: AsyncSession, replica: ReplicaRecord) -> ReplicaRecord:
    for what in ("price_per_s", "created_at", "billed_until", "cost"):
        _finite(getattr(replica, what), what)
    if await s.get(ServiceReplica, replica.id) is not None:
        raise StoreConflict(f"replica id {replica.id} is taken", entity="replica", id=replica.id)
    s.add(ServiceReplica(**{f.name: getattr(replica, f.name) for f in fields(ReplicaRecord)}))
    await s.flush()
    return await get_replica(s, replica.id)


async def get_replica(s: AsyncSession, replica_id: str) -> ReplicaRecord:
    row = (
        await s.execute(sa.select(*_REPLICA_COLUMNS).where(ServiceReplica.id == replica_id))
    ).first()
    if row is None:
        raise RecordNotFound(f"no replica {replica_id}", entity="replica", id=replica_id)
    return ReplicaRecord(*row)


async def list_replicas(
    s: AsyncSession,
    *,
    service_id: str | None = None,
    states: Collection[ReplicaState] | None = None,
    limit: int = 10_000,
) -> list[ReplicaRecord]:
    """Replicas, oldest first."""
    stmt = sa.select(*_REPLICA_COLUMNS)
    if service_id is not None:
        stmt = stmt.where(ServiceReplica.service_id == service_id)
    if states is not None:
        stmt = stmt.where(ServiceReplica.state.in_([ReplicaState(x) for x in states]))
    stmt = stmt.order_by(ServiceReplica.created_at, ServiceReplica.id).limit(limit)
    return [ReplicaRecord(*row) for row in await s.execute(stmt)]


async def recent_failures(
    s: AsyncSession, service_id: str, revision: int, limit: int
) -> list[str | None]:
    """The errors of the last ``limit`` failed replicas of a service's revision, newest first."""
    stmt = (
        sa.select(ServiceReplica.error)
        .where(
            ServiceReplica.service_id == service_id,
            ServiceReplica.revision == revision,
            ServiceReplica.state == ReplicaState.FAILED,
        )
        .order_by(ServiceReplica.created_at.desc(), ServiceReplica.id.desc())
        .limit(limit)
    )
    return list((await s.scalars(stmt)).all())


def check_replica_transition(current: ReplicaState, new: ReplicaState, *, replica_id: str) -> None:
    if new not in REPLICA_TRANSITIONS[current]:
        raise IllegalTransition(
            f"replica {replica_id}: cannot go from {current} to {new}",
            entity="replica",
            id=replica_id,
            current=str(current),
            new=str(new),
        )


async def advance_replica(
    s: AsyncSession, replica_id: str, state: ReplicaState, **values: object
) -> ReplicaRecord:
    """Move a replica to ``state`` (and set ``values``); one writer wins a race."""
    state = ReplicaState(state)
    unknown = set(values) - _REPLICA_FIELDS
    if unknown:
        raise ValueError(f"not replica fields: {sorted(unknown)}")
    for _ in range(_RETRIES):
        current = await get_replica(s, replica_id)
        check_replica_transition(current.state, state, replica_id=replica_id)
        result = await s.execute(
            sa.update(ServiceReplica)
            .where(ServiceReplica.id == replica_id, ServiceReplica.state == current.state)
            .values(state=state, **values)
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return await get_replica(s, replica_id)
    raise StoreConflict(f"replica {replica_id}: state kept changing", entity="replica")


async def record_replica_billing(
    s: AsyncSession,
    replica_id: str,
    *,
    billed_until: float,
    cost_delta: float,
    period_start: float | None = None,
) -> ReplicaRecord:
    """Bill a replica up to ``billed_until``: never backwards, never past its end, and from
    ``period_start`` only while its billing still stands there (else :class:`AlreadyBilled`)."""
    _finite(billed_until, "billed_until")
    if not math.isfinite(cost_delta) or cost_delta < 0:
        raise ValueError(f"cost_delta must be finite and >= 0, not {cost_delta!r}")
    for _ in range(_RETRIES):
        replica = await get_replica(s, replica_id)
        if period_start is not None and math.floor(replica.billed_until) != period_start:
            raise AlreadyBilled(
                f"replica {replica_id}: billed from {replica.billed_until}, not {period_start}",
                entity="replica",
                id=replica_id,
            )
        if billed_until < replica.billed_until:
            raise ValueError(f"replica {replica_id}: billing cannot go backwards")
        if replica.ended_at is not None and billed_until > replica.ended_at:
            raise ValueError(f"replica {replica_id}: cannot bill past its end")
        result = await s.execute(
            sa.update(ServiceReplica)
            .where(ServiceReplica.id == replica_id, ServiceReplica.receipts == replica.receipts)
            .values(
                billed_until=billed_until,
                cost=replica.cost + cost_delta,
                receipts=replica.receipts + 1,
            )
        )
        if result.rowcount == 1:  # type: ignore[attr-defined]
            return await get_replica(s, replica_id)
    raise StoreConflict(f"replica {replica_id}: billing kept changing", entity="replica")
