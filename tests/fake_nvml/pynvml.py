"""A fake ``pynvml`` for hosts without NVIDIA GPUs: the calls the hardware probe makes, over
``BYTELEAP_FAKE_NVML_GPUS`` (default 8) H100s, GPU i with the UUID `uuid(i)`.

Put this directory first on ``PYTHONPATH`` and a worker process probes eight GPUs;
in-process tests swap it in for ``hardware_probe.pynvml``.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

H100 = "NVIDIA H100 80GB HBM3"
H100_BYTES = 81559 << 20


class NVMLError(Exception):
    pass


def uuid(index: int) -> str:
    return f"GPU-0f8e7d6c-5b4a-3921-8a7b-{index:012x}"


def _count() -> int:
    return int(os.environ.get("BYTELEAP_FAKE_NVML_GPUS", "8"))


def nvmlInit() -> None:
    pass


def nvmlShutdown() -> None:
    pass


def nvmlSystemGetDriverVersion() -> str:
    return "550.54.15"


def nvmlSystemGetCudaDriverVersion() -> int:
    return 12040


def nvmlDeviceGetCount() -> int:
    return _count()


def nvmlDeviceGetHandleByIndex(index: int) -> int:
    if not 0 <= index < _count():
        raise NVMLError("Invalid Argument")
    return index


def nvmlDeviceGetUUID(handle: int) -> str:
    return uuid(handle)


def nvmlDeviceGetName(handle: int) -> str:
    return H100


def nvmlDeviceGetMemoryInfo(handle: int) -> SimpleNamespace:
    return SimpleNamespace(total=H100_BYTES, free=H100_BYTES, used=0)


def nvmlDeviceGetPciInfo(handle: int) -> SimpleNamespace:
    return SimpleNamespace(busId=f"00000000:{0x18 + handle:02X}:00.0")
