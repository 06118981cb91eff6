"""What placement reads: the workers on offer and what a job or lease asks for.

A worker is named by ``WorkerKey`` = ``(miner_hotkey, worker_id)``: worker ids are only unique
within their miner. ``cpu_cores`` and ``ram_mib`` on an offer are what the worker can give now
(its free capacity), so a CPU worker already running jobs offers what is left.

GPU model names and regions compare case-insensitively (``casefold``); a price table's keys are
folded once, when the offer is built.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = ["GpuSpec", "Requirements", "WorkerKey", "WorkerOffer", "WorkerState"]

WorkerKey = tuple[str, str]
"""``(miner_hotkey, worker_id)``."""

Name = Annotated[str, Field(min_length=1, max_length=256)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class WorkerState(StrEnum):
    """A worker's state as its miner reports it (the same values as ``net.messages``)."""

    IDLE = "idle"
    CHALLENGED = "challenged"
    LEASED = "leased"
    BUSY = "busy"
    OFFLINE = "offline"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuSpec(_Frozen):
    """One GPU of a worker; its position in ``WorkerOffer.gpus`` is its device index."""

    model: Name
    vram_mib: int = Field(ge=0)


class WorkerOffer(_Frozen):
    """One worker as the scheduler sees it: state, free capacity, prices and measured quality.

    ``price_per_gpu_s`` maps a GPU model to the price of one of those GPUs per second;
    ``price_per_cpu_s`` is the price of one CPU core per second, charged only for CPU-only work
    (a GPU's price covers the host cores and memory that come with it). ``verified_throughput``
    is the validator's verified flop/s for this worker (0 when it has none yet).
    """

    miner_hotkey: Name
    worker_id: Name
    state: WorkerState
    gpus: tuple[GpuSpec, ...] = ()
    cpu_cores: int = Field(ge=0)
    ram_mib: int = Field(ge=0)
    region: Name
    price_per_gpu_s: dict[str, Amount] = Field(default_factory=dict)
    price_per_cpu_s: Amount | None = None
    verified_throughput: Amount = 0.0
    rtt_ms: Amount = 0.0
    running_jobs: int = Field(default=0, ge=0)
    vm_leases: bool = False  # the worker can host a lease as a KVM virtual machine

    @field_validator("price_per_gpu_s")
    @classmethod
    def _fold_models(cls, prices: dict[str, float]) -> dict[str, float]:
        folded = {model.casefold(): price for model, price in prices.items()}
        if len(folded) != len(prices):
            raise ValueError("GPU models in the price table differ only by case")
        return folded

    @property
    def key(self) -> WorkerKey:
        return (self.miner_hotkey, self.worker_id)

    def gpu_price(self, model: str) -> float | None:
        """Price per second of one GPU of ``model`` here, or None when it is not for sale."""
        return self.price_per_gpu_s.get(model.casefold())


class Requirements(_Frozen):
    """What one replica of a job, lease or service needs from a single worker.

    ``gpu_count`` 0 means CPU-only work. ``gpu_model`` None takes any model; ``min_vram_mib``
    applies to each GPU. ``region`` None takes any region. ``max_price_per_s`` caps the price
    of the whole placement (all its GPUs, or all its cores for CPU-only work).
    """

    gpu_count: int = Field(default=0, ge=0, le=64)
    gpu_model: Name | None = None
    min_vram_mib: int = Field(default=0, ge=0)
    cpu_cores: float = Field(default=1.0, ge=0, allow_inf_nan=False)
    ram_mib: int = Field(default=0, ge=0)
    region: Name | None = None
    max_price_per_s: Amount | None = None
    vm: bool = False  # a VM lease: only workers that host VMs (``WorkerOffer.vm_leases``)

    @field_validator("gpu_model", "min_vram_mib")
    @classmethod
    def _needs_gpus(cls, value: str | int | None, info: ValidationInfo) -> str | int | None:
        # Asking for a model or VRAM without GPUs is a mistake in the spec, not "any worker".
        if value and info.data.get("gpu_count", 1) == 0:
            raise ValueError(f"{info.field_name} needs gpu_count >= 1")
        return value
