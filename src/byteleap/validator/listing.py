"""What a miner's worker listing leaves in the validator's store: the miner, its workers, their
hardware and addresses, their states, and which were online in this availability bucket."""

from __future__ import annotations

from byteleap.chain.port import NeuronInfo
from byteleap.net.messages import WorkerList, WorkerState, WorkerView
from byteleap.store import (
    GpuRecord,
    ListedWorker,
    Store,
    WorkerHardware,
    bucket_of,
    mark_online,
    record_listed_workers,
    upsert_miner,
    upsert_workers,
)
from byteleap.store import WorkerState as StoredState


def stored_hardware(worker: WorkerView) -> WorkerHardware:
    hw = worker.hardware
    return WorkerHardware(
        cpu_model=hw.cpu.model,
        cpu_cores=hw.cpu.cores_logical,
        ram_mb=hw.memory.total_mib,
        disk_mb=int(hw.disk.total_gib * 1024),
        gpus=tuple(
            GpuRecord(slot=g.index, model=g.model, vram_mb=g.vram_mib, uuid=g.uuid) for g in hw.gpus
        ),
    )


async def record_listing(
    store: Store, neuron: NeuronInfo, listing: WorkerList, *, now: int
) -> tuple[int, dict[str, int]]:
    """Store the listing; returns the miner's row id and each worker's row id by worker id."""
    axon = f"{neuron.axon_ip}:{neuron.axon_port}"
    async with store.session() as s:
        miner = await upsert_miner(s, neuron.hotkey, uid=neuron.uid, axon=axon, at=now)
        keys = [w.worker_id for w in listing.workers]
        ids = await upsert_workers(s, miner.id, keys, at=now)
        # A snapshot can skip states: a move the table refuses leaves the stored state, and
        # the miner's word is the current state next time.
        await record_listed_workers(
            s,
            [
                ListedWorker(
                    ids[w.worker_id], stored_hardware(w), w.public_key, w.ip,
                    StoredState(w.state.value),
                )
                for w in listing.workers
            ],
            at=now,
        )  # fmt: skip
        # Leased and busy workers count as available: they are doing paid work.
        online = [ids[w.worker_id] for w in listing.workers if w.state is not WorkerState.OFFLINE]
        await mark_online(s, online, bucket_of(now))
    return miner.id, ids
