"""Worker identities: the key and GPU uuids each worker last listed, read back for the
duplicate check (``byteleap.protocol.identity.duplicated_workers``)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.identity import WorkerIdentity
from byteleap.store.bulk import chunked
from byteleap.store.errors import RecordNotFound
from byteleap.store.models import Gpu, Miner, Worker

__all__ = ["set_worker_public_key", "worker_identities"]


async def set_worker_public_key(session: AsyncSession, worker_db_id: int, public_key: str) -> None:
    """Record the enrolled public key (hex) the worker listed, replacing any earlier one."""
    result = await session.execute(
        sa.update(Worker).where(Worker.id == worker_db_id).values(public_key=public_key)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        raise RecordNotFound(f"no worker with id {worker_db_id}", entity="worker", id=worker_db_id)


async def worker_identities(session: AsyncSession, *, seen_since: int) -> list[WorkerIdentity]:
    """Identities of the workers listed at or after ``seen_since``, by miner then worker.

    Only recent listings: a worker that was renamed or moved long ago must not be a duplicate
    of its new self. A key not yet recorded is ``""`` (the duplicate check skips it); GPU
    uuids come from the stored hardware, in slot order, unknown ones left out.
    """
    stmt = (
        sa.select(Worker.id, Miner.hotkey, Worker.worker_key, Worker.public_key)
        .join(Miner, Miner.id == Worker.miner_id)
        .where(Worker.last_seen_at >= seen_since)
        .order_by(Miner.hotkey, Worker.worker_key)
    )
    rows = list(await session.execute(stmt))
    uuids: dict[int, list[str]] = {}
    for batch in chunked([row[0] for row in rows]):
        gpus = await session.execute(
            sa.select(Gpu.worker_id, Gpu.uuid)
            .where(Gpu.worker_id.in_(batch), Gpu.uuid.is_not(None))
            .order_by(Gpu.worker_id, Gpu.slot)
        )
        for worker_id, uuid in gpus:
            uuids.setdefault(worker_id, []).append(uuid)
    return [
        WorkerIdentity(hotkey, key, public_key or "", tuple(uuids.get(wid, ())))
        for wid, hotkey, key, public_key in rows
    ]
