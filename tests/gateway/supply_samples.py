"""Listed workers, as miners report them, for the gateway's supply tests."""

from __future__ import annotations

import itertools

from byteleap.net.messages import WorkerState, WorkerView
from byteleap.protocol.hardware import HardwareInventory
from hardware_samples import gpu_rig

_ids = itertools.count(1)


def listed(
    *,
    model: str = "NVIDIA H100 80GB HBM3",
    vram_mib: int = 81559,
    gpus: int = 1,
    key: str | None = None,
    uuid_tag: str | None = None,
    hardware: HardwareInventory | None = None,
) -> WorkerView:
    """One idle worker with ``gpus`` GPUs of ``model``; each call gets a fresh id, key and GPU
    uuids unless ``key`` or ``uuid_tag`` make two of them share one."""
    n = next(_ids)
    rig = hardware or gpu_rig(gpus)
    tag = uuid_tag or f"{n:08x}"
    cards = [
        g.model_copy(update={"model": model, "vram_mib": vram_mib, "uuid": f"GPU-{tag}-{g.index}"})
        for g in rig.gpus
    ]
    return WorkerView(
        worker_id=f"w-{n:016x}",
        public_key=key or f"{n:064x}",
        state=WorkerState.IDLE,
        profile="cuda-f16" if cards else "cpu-f64",
        hardware=rig.model_copy(update={"gpus": cards}),
        last_seen=0.0,
    )
