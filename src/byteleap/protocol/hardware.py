"""A worker's hardware inventory: CPU, memory, disk and NVIDIA GPUs, as it reports them to its
miner at enrolment and in heartbeats, and as the scheduler matches jobs against them.

How a worker probes its machine is the worker's (``byteleap.worker.hardware_probe``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from byteleap.proof.profiles import Profile


class _Inventory(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GpuInfo(_Inventory):
    index: int = Field(ge=0)
    uuid: str
    model: str
    vram_mib: int = Field(ge=0)
    driver_version: str
    cuda_version: str  # the highest CUDA version the driver supports, e.g. "12.4"
    pci_bus_id: str


class CpuInfo(_Inventory):
    model: str
    cores_physical: int | None = Field(default=None, ge=1)  # None: the OS does not say
    cores_logical: int = Field(ge=1)
    freq_mhz: float | None = Field(default=None, ge=0)  # None: not exposed (many VMs/containers)


class MemoryInfo(_Inventory):
    total_mib: int = Field(ge=0)
    available_mib: int = Field(ge=0)


class DiskInfo(_Inventory):
    path: str
    total_gib: float = Field(ge=0)
    free_gib: float = Field(ge=0)


class HardwareInventory(_Inventory):
    hostname: str
    os: str
    python: str
    cpu: CpuInfo
    memory: MemoryInfo
    disk: DiskInfo
    gpus: list[GpuInfo]
    probed_at: datetime
    # Not probed: the worker sets it when its ``vm`` settings are enabled (libvirt and a base
    # image there), so the gateway places VM leases only on workers that can host them.
    vm_leases: bool = False


def choose_profile(inventory: HardwareInventory, torch_cuda_available: bool) -> Profile:
    """The challenge profile this worker should solve with ("cuda-f16" or "cpu-f64").

    cuda-f16 needs both a GPU and a CUDA build of torch: fp16 tensor-core matmul with fp32
    accumulation runs on every CUDA GPU since Volta, so it is the one GPU profile every GPU
    worker can serve (int8 tensor-core support and torch's int8 matmul vary by generation).
    A GPU without CUDA torch, or no GPU, falls back to cpu-f64: float64 BLAS is the fastest
    exact path on a CPU (integers exact to 2^53), where float32 would cap n·v² at 2^24.
    """
    if inventory.gpus and torch_cuda_available:
        return Profile.CUDA_F16
    return Profile.CPU_F64
