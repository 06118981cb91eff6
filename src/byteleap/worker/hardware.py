"""What this machine has: CPU, memory, disk (psutil) and NVIDIA GPUs (NVML via nvidia-ml-py).

The inventory is what a worker reports to its miner at enrolment and in heartbeats, and what the
scheduler matches jobs against. A machine without NVML (no driver, no GPU, a container without
the library) is an ordinary CPU worker: the probe logs the reason once per process and reports
no GPUs; it never fails because of NVML.
"""

from __future__ import annotations

import logging
import os
import platform
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil
import pynvml
from pydantic import BaseModel, ConfigDict, Field

from byteleap.proof.profiles import Profile

logger = logging.getLogger(__name__)

_MIB = 1 << 20
_GIB = 1 << 30

# NVML failing is the normal state of a CPU worker, and heartbeats probe repeatedly: say it once.
_nvml_failure_logged = False


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


def probe_hardware(disk_path: Path = Path("/")) -> HardwareInventory:
    """Probe this machine now. Blocking (NVML init can take a second): call it off the loop."""
    return HardwareInventory(
        hostname=socket.gethostname(),
        os=platform.platform(),
        python=platform.python_version(),
        cpu=probe_cpu(),
        memory=probe_memory(),
        disk=probe_disk(disk_path),
        gpus=probe_gpus(),
        probed_at=datetime.now(UTC),
    )


def probe_cpu() -> CpuInfo:
    freq = psutil.cpu_freq()
    physical = psutil.cpu_count(logical=False)
    logical = psutil.cpu_count(logical=True) or os.cpu_count() or 1
    return CpuInfo(
        model=_cpu_model(),
        cores_physical=int(physical) if physical else None,
        cores_logical=int(logical),
        freq_mhz=float(freq.current) if freq is not None and freq.current > 0 else None,
    )


def _cpu_model() -> str:
    # platform.processor() is empty or just "x86_64" on Linux; /proc/cpuinfo has the real name.
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Model", "Hardware") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def probe_memory() -> MemoryInfo:
    memory = psutil.virtual_memory()
    return MemoryInfo(
        total_mib=int(memory.total) // _MIB, available_mib=int(memory.available) // _MIB
    )


def probe_disk(path: Path) -> DiskInfo:
    usage = psutil.disk_usage(str(path))
    return DiskInfo(
        path=str(path),
        total_gib=round(int(usage.total) / _GIB, 2),
        free_gib=round(int(usage.free) / _GIB, 2),
    )


def probe_gpus() -> list[GpuInfo]:
    """Every GPU NVML sees; an empty list when NVML is missing or fails, logged once."""
    try:
        pynvml.nvmlInit()
    except (pynvml.NVMLError, OSError) as exc:
        _log_nvml_failure(exc)
        return []
    try:
        driver = _text(pynvml.nvmlSystemGetDriverVersion())
        cuda = _cuda_version(int(pynvml.nvmlSystemGetCudaDriverVersion()))
        return [_probe_gpu(i, driver, cuda) for i in range(int(pynvml.nvmlDeviceGetCount()))]
    except pynvml.NVMLError as exc:
        _log_nvml_failure(exc)
        return []
    finally:
        try:
            pynvml.nvmlShutdown()
        except pynvml.NVMLError:
            pass


def _probe_gpu(index: int, driver: str, cuda: str) -> GpuInfo:
    handle = pynvml.nvmlDeviceGetHandleByIndex(index)
    return GpuInfo(
        index=index,
        uuid=_text(pynvml.nvmlDeviceGetUUID(handle)),
        model=_text(pynvml.nvmlDeviceGetName(handle)),
        vram_mib=int(pynvml.nvmlDeviceGetMemoryInfo(handle).total) // _MIB,
        driver_version=driver,
        cuda_version=cuda,
        pci_bus_id=_text(pynvml.nvmlDeviceGetPciInfo(handle).busId),
    )


def _cuda_version(encoded: int) -> str:
    # NVML encodes CUDA 12.4 as 12040.
    return f"{encoded // 1000}.{encoded % 1000 // 10}"


def _text(value: Any) -> str:
    # Older nvidia-ml-py releases return bytes, newer ones str.
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


def _log_nvml_failure(exc: Exception) -> None:
    global _nvml_failure_logged
    if _nvml_failure_logged:
        return
    _nvml_failure_logged = True
    logger.warning("NVML unavailable, reporting no GPUs", extra={"nvml_error": str(exc)})


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
