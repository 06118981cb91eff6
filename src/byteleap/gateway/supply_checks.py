"""Which listed workers the gateway may sell, and as what. Pure.

A miner's listing is its own word, and a cheating miner does not refuse its own workers, so
the gateway checks every listing before anything reaches a customer:

- a worker whose hardware cannot be real (``gpu_models.hardware_claim_problem``: an unknown
  GPU, more VRAM than its model has, absurd cores or memory) is not offered. Such claims
  exist to match a placement filter nobody honest can, so that the miner can rent its own
  worker (wash leasing);
- a worker that shares its key or a GPU uuid with another listed worker, of any miner
  (``protocol.identity.duplicated_workers``), is not offered, nor is the other;
- a GPU is sold as the model its verified throughput supports (``gpu_models.offered_model``):
  its claim when the challenges agree with it, else the class they measured, else no GPU at
  all. A worker with no verified throughput is sold as no GPU.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from byteleap.gateway.scheduler import GpuSpec, WorkerKey, WorkerOffer
from byteleap.net.messages import WorkerView
from byteleap.protocol.gpu_models import hardware_claim_problem, offered_model
from byteleap.protocol.identity import WorkerIdentity, duplicated_workers

__all__ = ["as_measured", "refused_workers"]


def refused_workers(listings: Mapping[str, Sequence[WorkerView]]) -> dict[WorkerKey, str]:
    """Every listed worker that must not be offered, and why; ``listings`` maps each miner's
    hotkey to its workers, and must hold every miner (duplicates span miners)."""
    refused: dict[WorkerKey, str] = {}
    identities = []
    for hotkey, workers in listings.items():
        for w in workers:
            problem = hardware_claim_problem(w.hardware)
            if problem is not None:
                refused[(hotkey, w.worker_id)] = f"impossible hardware: {problem}"
            uuids = tuple(g.uuid for g in w.hardware.gpus)
            identities.append(WorkerIdentity(hotkey, w.worker_id, w.public_key, uuids))
    for key, why in duplicated_workers(identities).items():
        refused.setdefault(key, f"duplicated worker ({why})")
    return refused


def as_measured(offer: WorkerOffer, flops: float | None) -> WorkerOffer:
    """``offer`` with its GPUs sold as what ``flops`` (verified) supports and its
    ``verified_throughput`` set; without a class for every GPU it offers no GPU."""
    measured = flops if flops is not None and math.isfinite(flops) and flops > 0 else None
    gpus: list[GpuSpec] = []
    for gpu in offer.gpus:
        model = offered_model(gpu.model, gpu.vram_mib, measured) if measured else None
        if model is None:
            gpus = []
            break
        gpus.append(GpuSpec(model=model.name, vram_mib=min(gpu.vram_mib, model.vram_mib)))
    return offer.model_copy(update={"gpus": tuple(gpus), "verified_throughput": measured or 0.0})
