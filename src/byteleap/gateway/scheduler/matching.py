"""Hard filters: can this worker take this work at all, at what price, on which GPUs.

Every filter a worker fails is listed (a worker can be both offline and in the wrong region),
so a refusal explains itself. The GPU checks narrow step by step (count, then model, then VRAM,
then price) and report the first step that leaves too few GPUs.

Price of a fit: for GPU work, the sum of the per-second prices of the cheapest GPUs that fit
(ties by device index); for CPU-only work, ``cpu_cores × price_per_cpu_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from byteleap.gateway.scheduler.offers import (
    Requirements,
    WorkerKey,
    WorkerOffer,
    WorkerState,
    gpu_key,
    wanted_gpu_keys,
)

__all__ = ["Fit", "Refusal", "RejectReason", "Rejection", "fit"]


class RejectReason(StrEnum):
    EXCLUDED = "excluded"
    OFFLINE = "offline"
    BUSY = "busy"
    LEASED = "leased"
    CHALLENGED = "challenged"
    WRONG_REGION = "wrong_region"
    TOO_FEW_GPUS = "too_few_gpus"
    WRONG_GPU_MODEL = "wrong_gpu_model"
    NOT_ENOUGH_VRAM = "not_enough_vram"
    NO_PRICE = "no_price"
    NOT_ENOUGH_CPU = "not_enough_cpu"
    NOT_ENOUGH_RAM = "not_enough_ram"
    OVER_MAX_PRICE = "over_max_price"
    NO_VM = "no_vm"  # a VM lease, and the worker hosts no VMs


_STATE_REASON: dict[WorkerState, RejectReason] = {
    WorkerState.OFFLINE: RejectReason.OFFLINE,
    WorkerState.BUSY: RejectReason.BUSY,
    WorkerState.LEASED: RejectReason.LEASED,
    WorkerState.CHALLENGED: RejectReason.CHALLENGED,
}


class Refusal(BaseModel):
    """One filter a worker failed, with a human-readable detail."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: RejectReason
    detail: str


class Rejection(BaseModel):
    """Why one worker was refused: every filter it failed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    miner_hotkey: str
    worker_id: str
    refusals: tuple[Refusal, ...] = Field(min_length=1)

    @property
    def key(self) -> WorkerKey:
        return (self.miner_hotkey, self.worker_id)

    @property
    def reasons(self) -> tuple[RejectReason, ...]:
        return tuple(r.reason for r in self.refusals)


@dataclass(frozen=True, slots=True)
class Fit:
    """A worker that passes every hard filter: its price for this work and the GPUs to use."""

    offer: WorkerOffer
    price_per_s: float
    gpu_indices: tuple[int, ...]


def fit(req: Requirements, offer: WorkerOffer, *, excluded: bool = False) -> Fit | Rejection:
    """Check ``offer`` against every hard requirement; a ``Fit`` or the full list of refusals."""
    refusals: list[Refusal] = []
    if excluded:
        refusals.append(Refusal(reason=RejectReason.EXCLUDED, detail="excluded by the caller"))
    if offer.state is not WorkerState.IDLE:
        reason = _STATE_REASON[offer.state]
        refusals.append(Refusal(reason=reason, detail=f"worker is {offer.state.value}"))
    if req.region is not None and req.region.casefold() != offer.region.casefold():
        detail = f"needs region {req.region}, worker is in {offer.region}"
        refusals.append(Refusal(reason=RejectReason.WRONG_REGION, detail=detail))
    if req.vm and not offer.vm_leases:
        refusals.append(Refusal(reason=RejectReason.NO_VM, detail="worker hosts no VM leases"))
    if req.gpu_count > 0:
        gpu_refusal, indices, price = _gpu_choice(req, offer)
    else:
        gpu_refusal, indices, price = _cpu_price(req, offer)
    if gpu_refusal is not None:
        refusals.append(gpu_refusal)
    if offer.cpu_cores < req.cpu_cores:
        detail = f"needs {req.cpu_cores:g} CPU cores, {offer.cpu_cores} free"
        refusals.append(Refusal(reason=RejectReason.NOT_ENOUGH_CPU, detail=detail))
    if offer.ram_mib < req.ram_mib:
        detail = f"needs {req.ram_mib} MiB RAM, {offer.ram_mib} free"
        refusals.append(Refusal(reason=RejectReason.NOT_ENOUGH_RAM, detail=detail))
    if price is not None and req.max_price_per_s is not None and price > req.max_price_per_s:
        detail = f"costs {price:g}/s, max is {req.max_price_per_s:g}/s"
        refusals.append(Refusal(reason=RejectReason.OVER_MAX_PRICE, detail=detail))
    if refusals or price is None:
        return Rejection(
            miner_hotkey=offer.miner_hotkey, worker_id=offer.worker_id, refusals=tuple(refusals)
        )
    return Fit(offer=offer, price_per_s=price, gpu_indices=indices)


def _gpu_choice(
    req: Requirements, offer: WorkerOffer
) -> tuple[Refusal | None, tuple[int, ...], float | None]:
    n = req.gpu_count
    wanted = wanted_gpu_keys(req.gpu_model) if req.gpu_model is not None else None
    # One pass over the GPUs, counting what survives each step of the narrowing.
    of_model = big_enough = 0
    priced: list[tuple[float, int]] = []
    for i, gpu in enumerate(offer.gpus):
        if wanted is not None and gpu_key(gpu.model) not in wanted:
            continue
        of_model += 1
        if gpu.vram_mib < req.min_vram_mib:
            continue
        big_enough += 1
        price = offer.gpu_price(gpu.model)
        if price is not None:
            priced.append((price, i))
    if len(offer.gpus) < n:
        detail = f"needs {n} GPUs, worker has {len(offer.gpus)}"
        return Refusal(reason=RejectReason.TOO_FEW_GPUS, detail=detail), (), None
    if of_model < n:
        detail = f"needs {n} × {req.gpu_model}, worker has {of_model}"
        return Refusal(reason=RejectReason.WRONG_GPU_MODEL, detail=detail), (), None
    if big_enough < n:
        detail = f"needs {n} GPUs with >= {req.min_vram_mib} MiB, worker has {big_enough}"
        return Refusal(reason=RejectReason.NOT_ENOUGH_VRAM, detail=detail), (), None
    if len(priced) < n:
        detail = f"only {len(priced)} of the {big_enough} fitting GPUs have a price"
        return Refusal(reason=RejectReason.NO_PRICE, detail=detail), (), None
    chosen = sorted(priced)[:n]
    return None, tuple(sorted(i for _, i in chosen)), sum(p for p, _ in chosen)


def _cpu_price(
    req: Requirements, offer: WorkerOffer
) -> tuple[Refusal | None, tuple[int, ...], float | None]:
    if offer.price_per_cpu_s is None:
        detail = "worker sells no CPU-only time"
        return Refusal(reason=RejectReason.NO_PRICE, detail=detail), (), None
    return None, (), req.cpu_cores * offer.price_per_cpu_s
