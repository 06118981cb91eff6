"""The worker's VM leases through real libvirt-python (its ``test:///default`` driver, which
keeps domains and their states inside this process) and the real disk tools: a start makes
the disks, defines and starts the domain and reports it running with its address; a stop
removes it; what cannot start is reported failed with the reason and leaves nothing."""

from __future__ import annotations

import importlib.util
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from byteleap.config import WorkerVmSettings
from byteleap.net.messages import parse_worker_message
from byteleap.protocol.hardware import CpuInfo, DiskInfo, GpuInfo, HardwareInventory, MemoryInfo
from byteleap.protocol.vm_lease import StartVm, VmLeaseRequest, VmReport
from byteleap.worker.vm import VmHost, VmState
from byteleap.worker.vm_leases import VmLeases, gpu_pci_addresses, pci_address
from worker.vm.vm_fixtures import ed25519_key, missing, need_tools

LEASE = "0123456789abcdef0123456789abcdef"


def hardware(*bus_ids: str) -> HardwareInventory:
    gpus = [
        GpuInfo(
            index=i,
            uuid=f"GPU-{i}",
            model="NVIDIA H100 80GB HBM3",
            vram_mib=81559,
            driver_version="550.54",
            cuda_version="12.4",
            pci_bus_id=bus,
        )
        for i, bus in enumerate(bus_ids)
    ]
    return HardwareInventory(
        hostname="h",
        os="Linux",
        python="3.11",
        cpu=CpuInfo(model="x", cores_logical=8),
        memory=MemoryInfo(total_mib=65536, available_mib=60000),
        disk=DiskInfo(path="/", total_gib=100, free_gib=50),
        gpus=gpus,
        probed_at=datetime.now(UTC),
    )


def test_nvml_bus_ids_become_libvirt_pci_addresses() -> None:
    assert pci_address("00000000:41:00.0") == "0000:41:00.0"
    assert pci_address("00000001:C1:00.0") == "0001:c1:00.0"
    hw = hardware("00000000:41:00.0", "00000000:C1:00.0")
    assert gpu_pci_addresses(hw, [1]) == ["0000:c1:00.0"]
    with pytest.raises(ValueError, match="no GPU"):
        gpu_pci_addresses(hw, [2])


@pytest.fixture
def settings(tmp_path: Path) -> WorkerVmSettings:
    if importlib.util.find_spec("libvirt") is None:
        missing("libvirt-python is not installed (pip install -e '.[vm]')")
    need_tools("qemu-img", "genisoimage")
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    return WorkerVmSettings(
        enabled=True, uri="test:///default", base_image=base, disk_dir=tmp_path / "disks"
    )


class Reports:
    def __init__(self) -> None:
        self.sent: list[VmReport] = []

    async def __call__(self, raw: str) -> None:
        message = parse_worker_message(raw)
        assert isinstance(message, VmReport)
        self.sent.append(message)

    @property
    def states(self) -> list[str]:
        return [r.access.state for r in self.sent]


def start(lease_id: str = LEASE, **vm: object) -> StartVm:
    request = VmLeaseRequest.model_validate({"ssh_public_key": ed25519_key()} | vm)
    return StartVm(lease_id=lease_id, vm=request)


async def test_a_vm_lease_starts_reports_its_address_and_is_removed(
    settings: WorkerVmSettings, tmp_path: Path
) -> None:
    vms = VmLeases(settings, tmp_path, poll_s=0.05)
    reports = Reports()
    try:
        await vms.start(start(vcpus=2, memory_mib=1024), hardware(), reports)
        assert reports.states[0] == "starting" and reports.states[-1] == "running"
        last = reports.sent[-1].access
        assert last.domain == f"lease-{LEASE}" and last.username == "byteleap"
        assert last.address is not None and last.ssh == f"ssh byteleap@{last.address}"
        host = vms.host()
        assert await host.state(f"lease-{LEASE}") is VmState.RUNNING
        disks = sorted(p.name for p in (tmp_path / "disks").iterdir())
        assert disks == [f"lease-{LEASE}-seed.iso", f"lease-{LEASE}.qcow2"]
        assert await vms.probe(LEASE) == (True, "vm running")
        assert await vms.probe("f" * 32) is None  # no VM: an ordinary lease

        await vms.start(start(), hardware(), reports)  # a repeated start changes nothing
        assert reports.states[-1] == "running"

        await vms.stop(LEASE, reports)
        assert reports.states[-1] == "absent"
        assert await host.state(f"lease-{LEASE}") is VmState.ABSENT
        assert list((tmp_path / "disks").iterdir()) == []
        assert settings.base_image is not None and settings.base_image.is_file()
    finally:
        vms.close()


async def test_what_cannot_start_is_reported_failed_and_leaves_nothing(
    settings: WorkerVmSettings, tmp_path: Path
) -> None:
    vms = VmLeases(settings, tmp_path)
    reports = Reports()
    try:
        # the lease asks for a GPU this worker does not have
        await vms.start(start(gpu_indices=[0]), hardware(), reports)
        assert reports.states == ["failed"]
        assert "no GPU" in reports.sent[0].access.detail
        # the base image went missing after the worker advertised VM leases
        assert settings.base_image is not None
        settings.base_image.unlink()
        await vms.start(start(), hardware(), reports)
        assert reports.states[-1] == "failed" and "base image" in reports.sent[-1].access.detail
        assert vms.specs == {}
        assert await VmHost("test:///default").state(f"lease-{LEASE}") is VmState.ABSENT
    finally:
        vms.close()


async def test_a_dropped_link_removes_every_vm(settings: WorkerVmSettings, tmp_path: Path) -> None:
    vms = VmLeases(settings, tmp_path, address_wait_s=0)
    reports = Reports()
    other = "fedcba9876543210fedcba9876543210"
    try:
        await vms.start(start(), hardware(), reports)
        await vms.start(start(other), hardware(), reports)
        assert set(vms.specs) == {LEASE, other}
        await vms.stop_all()
        assert vms.specs == {}
        for lease in (LEASE, other):
            assert await vms.host().state(f"lease-{lease}") is VmState.ABSENT
    finally:
        vms.close()


def test_disabled_or_incomplete_settings_say_why_not(tmp_path: Path) -> None:
    assert VmLeases(WorkerVmSettings(), tmp_path).unavailable() == "vm leases are not enabled"
    absent = WorkerVmSettings(enabled=True, base_image=tmp_path / "none.qcow2")
    assert "does not exist" in (VmLeases(absent, tmp_path).unavailable() or "")
    with pytest.raises(ValueError, match="base_image"):
        WorkerVmSettings(enabled=True)
