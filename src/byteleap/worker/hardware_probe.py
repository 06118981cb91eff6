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

from byteleap.protocol.hardware import CpuInfo, DiskInfo, GpuInfo, HardwareInventory, MemoryInfo

logger = logging.getLogger(__name__)

_MIB = 1 << 20
_GIB = 1 << 30

# NVML failing is the normal state of a CPU worker, and heartbeats probe repeatedly: say it once.
_nvml_failure_logged = False


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
