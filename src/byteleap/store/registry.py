"""Miners, their workers, hardware, worker state and IP history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.states import WorkerState
from byteleap.store.bulk import chunked, copy_rows
from byteleap.store.errors import RecordNotFound
from byteleap.store.models import Gpu, Miner, Worker, WorkerIp
from byteleap.store.transitions import check_worker_transition


@dataclass(frozen=True, slots=True)
class MinerRecord:
    id: int
    hotkey: str
    uid: int | None
    axon: str | None
    first_seen_at: int
    last_seen_at: int


@dataclass(frozen=True, slots=True)
class GpuRecord:
    """One GPU of a worker as the validator stores it (from the inventory it reported)."""

    slot: int
    model: str
    vram_mb: int
    uuid: str | None = None


@dataclass(frozen=True, slots=True)
class WorkerHardware:
    cpu_model: str | None = None
    cpu_cores: int | None = None
    ram_mb: int | None = None
    disk_mb: int | None = None
    gpus: tuple[GpuRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class WorkerRecord:
    id: int
    miner_id: int
    worker_key: str
    state: WorkerState
    hardware: WorkerHardware
    first_seen_at: int
    last_seen_at: int


@dataclass(frozen=True, slots=True)
class WorkerIpRecord:
    worker_id: int
    ip: str
    first_seen_at: int
    last_seen_at: int


def _upsert(session: AsyncSession, table: sa.Table) -> sa.Insert:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _miner(row: Miner) -> MinerRecord:
    return MinerRecord(row.id, row.hotkey, row.uid, row.axon, row.first_seen_at, row.last_seen_at)


async def upsert_miner(
    session: AsyncSession, hotkey: str, *, uid: int | None, axon: str | None, at: int
) -> MinerRecord:
    """Create the miner or refresh its uid, axon and last-seen time."""
    stmt = _upsert(session, Miner.__table__)  # type: ignore[arg-type]
    values = {"hotkey": hotkey, "uid": uid, "axon": axon, "first_seen_at": at, "last_seen_at": at}
    stmt = stmt.values(**values).on_conflict_do_update(  # type: ignore[attr-defined]
        index_elements=["hotkey"],
        set_={"uid": uid, "axon": axon, "last_seen_at": at},
    )
    await session.execute(stmt)
    miner = await get_miner(session, hotkey)
    assert miner is not None
    return miner


async def get_miner(session: AsyncSession, hotkey: str) -> MinerRecord | None:
    row = await session.scalar(sa.select(Miner).where(Miner.hotkey == hotkey))
    return None if row is None else _miner(row)


async def list_miners(session: AsyncSession) -> list[MinerRecord]:
    rows = await session.scalars(sa.select(Miner).order_by(Miner.id))
    return [_miner(r) for r in rows]


async def upsert_workers(
    session: AsyncSession, miner_id: int, worker_keys: Sequence[str], *, at: int
) -> dict[str, int]:
    """Make sure each worker exists (new ones start idle); returns worker_key → worker id."""
    ids: dict[str, int] = {}
    table = Worker.__table__
    for batch in chunked(dict.fromkeys(worker_keys)):
        rows = [
            {
                "miner_id": miner_id,
                "worker_key": key,
                "state": WorkerState.IDLE,
                "first_seen_at": at,
                "last_seen_at": at,
            }
            for key in batch
        ]
        stmt = _upsert(session, table).values(rows)  # type: ignore[arg-type]
        stmt = stmt.on_conflict_do_update(  # type: ignore[attr-defined]
            index_elements=["miner_id", "worker_key"], set_={"last_seen_at": at}
        ).returning(table.c.worker_key, table.c.id)
        ids.update((key, wid) for key, wid in (await session.execute(stmt)))
    return ids


async def set_worker_hardware(session: AsyncSession, worker_id: int, hw: WorkerHardware) -> None:
    """Replace the worker's hardware inventory (CPU/RAM/disk and its GPUs)."""
    result = await session.execute(
        sa.update(Worker)
        .where(Worker.id == worker_id)
        .values(
            cpu_model=hw.cpu_model, cpu_cores=hw.cpu_cores, ram_mb=hw.ram_mb, disk_mb=hw.disk_mb
        )
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise RecordNotFound(f"no worker with id {worker_id}", entity="worker", id=worker_id)
    await session.execute(sa.delete(Gpu).where(Gpu.worker_id == worker_id))
    if hw.gpus:
        await session.execute(
            sa.insert(Gpu),
            [
                {
                    "worker_id": worker_id,
                    "slot": g.slot,
                    "model": g.model,
                    "vram_mb": g.vram_mb,
                    "uuid": g.uuid,
                }
                for g in hw.gpus
            ],
        )


async def set_worker_states(
    session: AsyncSession, states: Mapping[int, WorkerState], *, at: int
) -> None:
    """Move workers to new states; checks every move first, so a bad one changes nothing."""
    current: dict[int, WorkerState] = {}
    for batch in chunked(states):
        rows = await session.execute(sa.select(Worker.id, Worker.state).where(Worker.id.in_(batch)))
        current.update((wid, state) for wid, state in rows)
    for worker_id, new in states.items():
        if worker_id not in current:
            raise RecordNotFound(f"no worker with id {worker_id}", entity="worker", id=worker_id)
        check_worker_transition(current[worker_id], new, worker_id=worker_id)
    by_state: dict[WorkerState, list[int]] = {}
    for worker_id, new in states.items():
        by_state.setdefault(new, []).append(worker_id)
    for new, ids in by_state.items():
        for batch in chunked(ids):
            await session.execute(
                sa.update(Worker).where(Worker.id.in_(batch)).values(state=new, last_seen_at=at)
            )


async def set_worker_state(
    session: AsyncSession, worker_id: int, state: WorkerState, *, at: int
) -> None:
    await set_worker_states(session, {worker_id: state}, at=at)


async def get_worker(session: AsyncSession, worker_id: int) -> WorkerRecord:
    workers = await _workers(session, Worker.id == worker_id)
    if not workers:
        raise RecordNotFound(f"no worker with id {worker_id}", entity="worker", id=worker_id)
    return workers[0]


async def list_workers(session: AsyncSession, miner_id: int | None = None) -> list[WorkerRecord]:
    return await _workers(session, sa.true() if miner_id is None else Worker.miner_id == miner_id)


async def _workers(session: AsyncSession, where: sa.ColumnElement[bool]) -> list[WorkerRecord]:
    workers = list(await session.scalars(sa.select(Worker).where(where).order_by(Worker.id)))
    gpus: dict[int, list[GpuRecord]] = {}
    for batch in chunked([w.id for w in workers]):
        rows = await session.scalars(
            sa.select(Gpu).where(Gpu.worker_id.in_(batch)).order_by(Gpu.worker_id, Gpu.slot)
        )
        for g in rows:
            gpus.setdefault(g.worker_id, []).append(GpuRecord(g.slot, g.model, g.vram_mb, g.uuid))
    return [
        WorkerRecord(
            id=w.id,
            miner_id=w.miner_id,
            worker_key=w.worker_key,
            state=w.state,
            hardware=WorkerHardware(
                w.cpu_model, w.cpu_cores, w.ram_mb, w.disk_mb, tuple(gpus.get(w.id, ()))
            ),
            first_seen_at=w.first_seen_at,
            last_seen_at=w.last_seen_at,
        )
        for w in workers
    ]


async def record_worker_ip(session: AsyncSession, worker_id: int, ip: str, *, at: int) -> bool:
    """Note that the worker was seen at ``ip``; returns True when that is a change of IP."""
    latest = await session.scalar(
        sa.select(WorkerIp)
        .where(WorkerIp.worker_id == worker_id)
        .order_by(WorkerIp.last_seen_at.desc(), WorkerIp.id.desc())
        .limit(1)
    )
    if latest is not None and latest.ip == ip:
        latest.last_seen_at = max(latest.last_seen_at, at)
        return False
    session.add(WorkerIp(worker_id=worker_id, ip=ip, first_seen_at=at, last_seen_at=at))
    await session.flush()
    return latest is not None


async def ip_history(
    session: AsyncSession, *, since: int, until: int | None = None
) -> list[WorkerIpRecord]:
    """IP stretches that overlap ``[since, until]``, by worker then time (for the IP penalty)."""
    cond = WorkerIp.last_seen_at >= since
    if until is not None:
        cond = cond & (WorkerIp.first_seen_at <= until)
    stmt = (
        sa.select(WorkerIp.worker_id, WorkerIp.ip, WorkerIp.first_seen_at, WorkerIp.last_seen_at)
        .where(cond)
        .order_by(WorkerIp.worker_id, WorkerIp.first_seen_at, WorkerIp.id)
    )
    return [WorkerIpRecord(*row) for row in (await session.execute(stmt))]


async def bulk_insert_worker_ips(session: AsyncSession, records: Iterable[WorkerIpRecord]) -> int:
    """Insert many IP stretches at once (synthetic history, imports)."""
    columns = ("worker_id", "ip", "first_seen_at", "last_seen_at")
    rows = ((r.worker_id, r.ip, r.first_seen_at, r.last_seen_at) for r in records)
    return await copy_rows(session, WorkerIp.__table__, columns, rows)  # type: ignore[arg-type]
