"""A miner's worker listing written at once: the hardware, enrolled keys, addresses and states of
all its workers in a few statements whatever their number, and only what changed.

The validator lists every miner every round. Written one worker at a time (``registry``,
``identities``), a listing of 100 workers took some 800 statements; here it takes about ten,
with the same end state (GPU rows are replaced only for a worker whose inventory changed).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.states import WorkerState
from byteleap.store.bulk import chunked
from byteleap.store.errors import IllegalTransition, RecordNotFound
from byteleap.store.models import Gpu, Worker, WorkerIp
from byteleap.store.registry import GpuRecord, WorkerHardware
from byteleap.store.transitions import check_worker_transition

__all__ = ["ListedWorker", "record_listed_workers"]


@dataclass(frozen=True, slots=True)
class ListedWorker:
    """One worker as its miner listed it, by its row id."""

    worker_id: int
    hardware: WorkerHardware
    public_key: str
    ip: str | None
    state: WorkerState


@dataclass(frozen=True, slots=True)
class _Stored:
    state: WorkerState
    hardware: WorkerHardware
    public_key: str | None


async def record_listed_workers(
    session: AsyncSession, listed: Sequence[ListedWorker], *, at: int
) -> list[int]:
    """Record each worker's hardware, key, IP (seen ``at``) and state, as ``set_worker_hardware``,
    ``set_worker_public_key``, ``record_worker_ip`` and ``set_worker_state`` would one by one.

    A listing is a snapshot and may skip states: a move the state table does not allow from the
    stored state is left out, and those workers' ids are returned. A later entry for the same
    worker wins. Raises ``RecordNotFound`` for a worker id that is not stored.
    """
    latest = {w.worker_id: w for w in listed}
    stored = await _stored(session, list(latest))
    missing = [wid for wid in latest if wid not in stored]
    if missing:
        raise RecordNotFound(f"no worker with id {missing[0]}", entity="worker", id=missing[0])
    await _write_hardware(
        session, [w for w in latest.values() if w.hardware != stored[w.worker_id].hardware]
    )
    keys = [w for w in latest.values() if w.public_key != stored[w.worker_id].public_key]
    if keys:
        table = Worker.__table__
        stmt = sa.update(table).where(table.c.id == sa.bindparam("b_id"))
        await session.execute(
            stmt.values(public_key=sa.bindparam("b_key")),
            [{"b_id": w.worker_id, "b_key": w.public_key} for w in keys],
        )
    await _record_ips(session, {w.worker_id: w.ip for w in latest.values() if w.ip}, at=at)
    return await _move_states(
        session, {w.worker_id: (stored[w.worker_id].state, w.state) for w in latest.values()}, at
    )


async def _stored(session: AsyncSession, ids: list[int]) -> dict[int, _Stored]:
    w = Worker
    columns = (w.id, w.state, w.cpu_model, w.cpu_cores, w.ram_mb, w.disk_mb, w.public_key)
    rows: dict[int, tuple[object, ...]] = {}
    gpus: dict[int, list[GpuRecord]] = {}
    for batch in chunked(ids):
        for row in await session.execute(sa.select(*columns).where(w.id.in_(batch))):
            rows[row[0]] = tuple(row)
        found = await session.execute(
            sa.select(Gpu.worker_id, Gpu.slot, Gpu.model, Gpu.vram_mb, Gpu.uuid)
            .where(Gpu.worker_id.in_(batch))
            .order_by(Gpu.worker_id, Gpu.slot)
        )
        for wid, slot, model, vram_mb, uuid in found:
            gpus.setdefault(wid, []).append(GpuRecord(slot, model, vram_mb, uuid))
    return {
        wid: _Stored(
            state,  # type: ignore[arg-type]
            WorkerHardware(cpu_model, cpu_cores, ram_mb, disk_mb, tuple(gpus.get(wid, ()))),  # type: ignore[arg-type]
            public_key,  # type: ignore[arg-type]
        )
        for wid, (_, state, cpu_model, cpu_cores, ram_mb, disk_mb, public_key) in rows.items()
    }


async def _write_hardware(session: AsyncSession, changed: Sequence[ListedWorker]) -> None:
    if not changed:
        return
    table = Worker.__table__
    await session.execute(
        sa.update(table)
        .where(table.c.id == sa.bindparam("b_id"))
        .values(
            cpu_model=sa.bindparam("b_cpu_model"),
            cpu_cores=sa.bindparam("b_cpu_cores"),
            ram_mb=sa.bindparam("b_ram_mb"),
            disk_mb=sa.bindparam("b_disk_mb"),
        ),
        [
            {
                "b_id": w.worker_id,
                "b_cpu_model": w.hardware.cpu_model,
                "b_cpu_cores": w.hardware.cpu_cores,
                "b_ram_mb": w.hardware.ram_mb,
                "b_disk_mb": w.hardware.disk_mb,
            }
            for w in changed
        ],
    )
    for batch in chunked([w.worker_id for w in changed]):
        await session.execute(sa.delete(Gpu).where(Gpu.worker_id.in_(batch)))
    gpus = [
        {"worker_id": w.worker_id, "slot": g.slot, "model": g.model, "vram_mb": g.vram_mb,
         "uuid": g.uuid}
        for w in changed
        for g in w.hardware.gpus
    ]  # fmt: skip
    if gpus:
        await session.execute(sa.insert(Gpu), gpus)


async def _record_ips(session: AsyncSession, ips: dict[int, str], *, at: int) -> None:
    """Each worker's latest IP row (by last seen, then id) is touched when the IP is the same;
    a different or first IP opens a new row."""
    latest: dict[int, tuple[int, int, int, str]] = {}  # worker -> (last_seen_at, id, ..., ip)
    for batch in chunked(list(ips)):
        rows = await session.execute(
            sa.select(WorkerIp.worker_id, WorkerIp.last_seen_at, WorkerIp.id, WorkerIp.ip).where(
                WorkerIp.worker_id.in_(batch)
            )
        )
        for wid, last_seen_at, row_id, ip in rows:
            entry = (last_seen_at, row_id, wid, ip)
            if wid not in latest or entry[:2] > latest[wid][:2]:
                latest[wid] = entry
    touch = [
        row_id
        for wid, (last_seen_at, row_id, _, ip) in latest.items()
        if ip == ips[wid] and last_seen_at < at
    ]
    for batch in chunked(touch):
        await session.execute(
            sa.update(WorkerIp).where(WorkerIp.id.in_(batch)).values(last_seen_at=at)
        )
    fresh = [
        {"worker_id": wid, "ip": ip, "first_seen_at": at, "last_seen_at": at}
        for wid, ip in ips.items()
        if wid not in latest or latest[wid][3] != ip
    ]
    if fresh:
        await session.execute(sa.insert(WorkerIp), fresh)


async def _move_states(
    session: AsyncSession, moves: dict[int, tuple[WorkerState, WorkerState]], at: int
) -> list[int]:
    by_state: dict[WorkerState, list[int]] = {}
    refused = []
    for wid, (current, new) in moves.items():
        if new == current:
            continue
        try:
            check_worker_transition(current, new, worker_id=wid)
        except IllegalTransition:
            refused.append(wid)
            continue
        by_state.setdefault(new, []).append(wid)
    for new, ids in by_state.items():
        for batch in chunked(ids):
            await session.execute(
                sa.update(Worker).where(Worker.id.in_(batch)).values(state=new, last_seen_at=at)
            )
    return refused
