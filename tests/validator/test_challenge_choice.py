"""Which challenge a worker gets: its GPU is measured where it reports one, its CPU otherwise."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from byteleap.config import ValidatorSettings
from byteleap.net.messages import WorkerState, WorkerView
from byteleap.proof import Profile
from byteleap.validator.rounds import RoundParams
from byteleap.validator.service import round_params
from byteleap.worker.hardware import CpuInfo, DiskInfo, GpuInfo, HardwareInventory, MemoryInfo


def _worker(gpus: int) -> WorkerView:
    hardware = HardwareInventory(
        hostname="rig",
        os="Linux",
        python="3.11.9",
        cpu=CpuInfo(model="EPYC", cores_physical=8, cores_logical=16, freq_mhz=2400.0),
        memory=MemoryInfo(total_mib=64_000, available_mib=60_000),
        disk=DiskInfo(path="/", total_gib=100.0, free_gib=50.0),
        gpus=[
            GpuInfo(
                index=i,
                uuid=f"GPU-{i}",
                model="NVIDIA H100 80GB HBM3",
                vram_mib=81559,
                driver_version="550.54.15",
                cuda_version="12.4",
                pci_bus_id=f"00000000:{0x18 + i:02X}:00.0",
            )
            for i in range(gpus)
        ],
        probed_at=datetime(2025, 1, 2, tzinfo=UTC),
    )
    return WorkerView(
        worker_id="w-" + "0" * 16,
        public_key="00" * 32,
        state=WorkerState.IDLE,
        profile="cpu-f64",
        hardware=hardware,
        last_seen=0.0,
    )


def test_gpu_workers_get_the_gpu_challenge_and_cpu_workers_the_cpu_one() -> None:
    params = round_params(ValidatorSettings(challenge_n=1024, gpu_challenge_profile="cuda-i8"))
    assert params.challenge_for(_worker(gpus=0)) == (1024, Profile.CPU_F64)
    assert params.challenge_for(_worker(gpus=2)) == (32768, Profile.CUDA_I8)
    assert RoundParams().challenge_for(_worker(gpus=1)) == (32768, Profile.CUDA_F16)


def test_a_gpu_size_its_profile_cannot_keep_exact_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="gpu_challenge_n"):
        ValidatorSettings(gpu_challenge_n=65536)  # cuda-f16's A bound would fall below 256
