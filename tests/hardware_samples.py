"""A GPU rig's hardware inventory, as a worker would report it, for tests that need one."""

from __future__ import annotations

from datetime import UTC, datetime

from byteleap.protocol.hardware import CpuInfo, DiskInfo, GpuInfo, HardwareInventory, MemoryInfo


def gpu_rig(gpus: int = 2) -> HardwareInventory:
    """An H100 rig with ``gpus`` cards (0: the same host without any)."""
    return HardwareInventory(
        hostname="rig-7",
        os="Linux-6.8.0-x86_64-with-glibc2.39",
        python="3.11.9",
        cpu=CpuInfo(model="AMD EPYC 9654", cores_physical=96, cores_logical=192, freq_mhz=2400.0),
        memory=MemoryInfo(total_mib=1_031_000, available_mib=1_000_000),
        disk=DiskInfo(path="/", total_gib=3576.0, free_gib=3001.5),
        gpus=[
            GpuInfo(
                index=i,
                uuid=f"GPU-3b1f0c2e-8c4d-4f7a-9d2e-00000000000{i}",
                model="NVIDIA H100 80GB HBM3",
                vram_mib=81559,
                driver_version="550.54.15",
                cuda_version="12.4",
                pci_bus_id=f"00000000:{0x18 + i:02X}:00.0",
            )
            for i in range(gpus)
        ],
        probed_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
