"""What placement reads: the workers on offer and what a job or lease asks for.

A worker is named by ``WorkerKey`` = ``(miner_hotkey, worker_id)``: worker ids are only unique
within their miner. ``cpu_cores`` and ``ram_mib`` on an offer are what the worker can give now
(its free capacity), so a CPU worker already running jobs offers what is left.

GPU models are compared by what they mean (``protocol.gpu_models``): "NVIDIA H100 80GB HBM3",
"h100-sxm" and "H100 SXM" are one model, and a customer asking for a family ("H100") takes any
of its parts. A price table's keys are folded once, when the offer is built; a GPU's price is
its model's entry, else its family's ("H100" prices every H100). Names outside the table
compare case-insensitively, as do regions.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from byteleap.protocol.gpu_models import canonical_model, models_named
from byteleap.protocol.states import WorkerState

__all__ = [
    "GpuSpec",
    "Requirements",
    "WorkerKey",
    "WorkerOffer",
    "WorkerState",
    "gpu_key",
    "price_key",
    "wanted_gpu_keys",
    "worst_gpu_price",
]

WorkerKey = tuple[str, str]
"""``(miner_hotkey, worker_id)``."""

Name = Annotated[str, Field(min_length=1, max_length=256)]
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]


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
    # The worker's Ed25519 key as its miner lists it (hex): a lease's heartbeats are checked
    # against the key it was placed on.
    public_key: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")

    @field_validator("price_per_gpu_s")
    @classmethod
    def _fold_models(cls, prices: dict[str, float]) -> dict[str, float]:
        folded = {price_key(model): price for model, price in prices.items()}
        if len(folded) != len(prices):
            raise ValueError("GPU models in the price table differ only by case or spelling")
        return folded

    @property
    def key(self) -> WorkerKey:
        return (self.miner_hotkey, self.worker_id)

    def gpu_price(self, model: str) -> float | None:
        """Price per second of one GPU of ``model`` here, or None when it is not for sale."""
        return _lookup(self.price_per_gpu_s, model)


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


# Cached: placement asks for every GPU of every offer, for every job of a dispatch pass.
@lru_cache(maxsize=4096)
def gpu_key(name: str) -> str:
    """What a GPU's model name is compared by: its canonical model, else the folded name."""
    model = canonical_model(name)
    return model.name.casefold() if model is not None else name.casefold()


@lru_cache(maxsize=1024)
def wanted_gpu_keys(name: str) -> frozenset[str]:
    """The ``gpu_key``s a customer's ``gpu_model`` accepts (a family takes all its parts)."""
    models = models_named(name)
    if not models:
        return frozenset({name.casefold()})
    return frozenset(m.name.casefold() for m in models)


def price_key(name: str) -> str:
    """A price table key, folded: a family name prices the family, a model name the model."""
    models = models_named(name)
    return models[0].family.casefold() if len(models) > 1 else gpu_key(name)


def _lookup(folded: Mapping[str, float], name: str) -> float | None:
    """A GPU's price in a table folded by ``price_key``: its model's, else its family's."""
    model = canonical_model(name)
    if model is None:
        return folded.get(name.casefold())
    price = folded.get(model.name.casefold())
    return price if price is not None else folded.get(model.family.casefold())


def worst_gpu_price(prices: Mapping[str, float], gpu_model: str | None) -> float:
    """The most one GPU a request for ``gpu_model`` (None: any) can cost under ``prices``:
    the dearest model it accepts, or the dearest entry when none of them has a price."""
    folded = {price_key(k): v for k, v in prices.items()}
    names = [m.name for m in models_named(gpu_model)] if gpu_model is not None else []
    if gpu_model is not None and not names:
        names = [gpu_model]
    found = [p for p in (_lookup(folded, n) for n in names) if p is not None]
    return max(found or folded.values(), default=0.0)
