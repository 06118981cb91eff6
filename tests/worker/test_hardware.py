"""The hardware probe against this machine, and the GPU path on a machine that has one."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psutil
import pynvml
import pytest

from byteleap.protocol.hardware import HardwareInventory, choose_profile
from byteleap.worker import hardware_probe as hardware
from byteleap.worker.hardware_probe import probe_hardware
from hardware_samples import gpu_rig


def _nvml_error() -> str | None:
    """Why NVML cannot be used here, or None when it can."""
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return str(exc)
    pynvml.nvmlShutdown()
    return None


def test_probe_reports_this_machine(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    inventory = probe_hardware(tmp_path)

    assert inventory.cpu.cores_logical == psutil.cpu_count(logical=True)
    assert inventory.cpu.model.strip()
    if inventory.cpu.cores_physical is not None:
        assert inventory.cpu.cores_physical <= inventory.cpu.cores_logical
    total = psutil.virtual_memory().total // (1 << 20)
    assert inventory.memory.total_mib == total
    assert 0 < inventory.memory.available_mib <= inventory.memory.total_mib
    assert inventory.disk.path == str(tmp_path)
    assert 0 < inventory.disk.free_gib <= inventory.disk.total_gib
    assert inventory.hostname
    assert inventory.python.startswith("3.")
    assert before <= inventory.probed_at <= datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.skipif(_nvml_error() is None, reason="NVML works here; this covers its absence")
def test_missing_nvml_gives_no_gpus_and_logs_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(hardware, "_nvml_failure_logged", False)
    caplog.set_level(logging.WARNING, logger=hardware.__name__)

    first = probe_hardware()
    second = probe_hardware()

    assert first.gpus == [] and second.gpus == []
    assert first.cpu.cores_logical >= 1
    warnings = [r for r in caplog.records if r.name == hardware.__name__]
    assert len(warnings) == 1
    assert "NVML" in warnings[0].getMessage()
    assert choose_profile(first, torch_cuda_available=True) == "cpu-f64"


def test_gpu_inventory_round_trips_through_json() -> None:
    inventory = gpu_rig()
    text = inventory.model_dump_json()

    assert HardwareInventory.model_validate_json(text) == inventory
    assert '"vram_mib":81559' in text


@pytest.mark.parametrize(
    ("with_gpus", "torch_cuda", "expected"),
    [(True, True, "cuda-f16"), (True, False, "cpu-f64"), (False, True, "cpu-f64")],
)
def test_choose_profile(with_gpus: bool, torch_cuda: bool, expected: str) -> None:
    inventory = gpu_rig()
    if not with_gpus:
        inventory = inventory.model_copy(update={"gpus": []})
    assert choose_profile(inventory, torch_cuda_available=torch_cuda) == expected


@pytest.mark.gpu
@pytest.mark.skipif(_nvml_error() is not None, reason=f"no NVIDIA GPU: NVML says {_nvml_error()}")
def test_probe_sees_real_gpus() -> None:
    inventory = probe_hardware()

    assert inventory.gpus, "NVML initialises but the probe found no GPU"
    assert [g.index for g in inventory.gpus] == list(range(len(inventory.gpus)))
    for gpu in inventory.gpus:
        assert gpu.uuid.startswith(("GPU-", "MIG-"))
        assert gpu.vram_mib > 1024
        assert gpu.model
        major = int(gpu.cuda_version.split(".")[0])
        assert major >= 10
        assert gpu.driver_version[0].isdigit()
    assert len({g.uuid for g in inventory.gpus}) == len(inventory.gpus)
    assert len({g.pci_bus_id for g in inventory.gpus}) == len(inventory.gpus)
