"""One worker per GPU: `--gpu` / `gpus` / CUDA_VISIBLE_DEVICES over a fake NVML inventory of
eight H100s (tests/fake_nvml), the inventory the worker reports, and what its work is shown."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from byteleap.config import ConfigError, WorkerSettings, load_settings
from byteleap.protocol.hardware import GpuInfo
from byteleap.worker import hardware_probe
from byteleap.worker.gpu_choice import GpuChoice, choose_gpus, host_indices
from byteleap.worker.hardware_probe import probe_gpus, probe_hardware
from byteleap.worker.vm_leases import gpu_pci_addresses
from fake_nvml import pynvml as fake_nvml

FAKE_NVML_DIR = Path(fake_nvml.__file__).parent


@pytest.fixture
def eight_h100s(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[GpuInfo]]:
    """The probe reads the fake NVML: eight H100s, GPU i with UUID fake_nvml.uuid(i)."""
    monkeypatch.setattr(hardware_probe, "pynvml", fake_nvml)
    monkeypatch.setenv("BYTELEAP_FAKE_NVML_GPUS", "8")
    yield probe_gpus()


def test_the_fake_inventory_is_eight_h100s(eight_h100s: list[GpuInfo]) -> None:
    assert [g.index for g in eight_h100s] == list(range(8))
    assert [g.uuid for g in eight_h100s] == [fake_nvml.uuid(i) for i in range(8)]
    assert {g.model for g in eight_h100s} == {"NVIDIA H100 80GB HBM3"}


def test_gpu_3_alone_is_what_the_worker_reports(eight_h100s: list[GpuInfo]) -> None:
    choice = choose_gpus(eight_h100s, indices=[3], visible_devices=None)
    reported = choice.inventory(probe_hardware()).gpus

    assert [(g.index, g.uuid) for g in reported] == [(3, fake_nvml.uuid(3))]
    assert reported[0].pci_bus_id == "00000000:1B:00.0"
    assert choice.environment() == {
        "CUDA_VISIBLE_DEVICES": fake_nvml.uuid(3),
        "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
    }


def test_the_flag_wins_over_cuda_visible_devices(eight_h100s: list[GpuInfo]) -> None:
    choice = choose_gpus(eight_h100s, indices=[6, 2], visible_devices="0,1")
    assert choice.uuids == (fake_nvml.uuid(2), fake_nvml.uuid(6))  # the host's order


@pytest.mark.parametrize(
    ("visible", "expected"),
    [
        (f"{fake_nvml.uuid(1)},5", [1, 5]),
        ("5, GPU-0f8e7d6c-5b4a-3921-8a7b-000000000007", [5, 7]),
        ("GPU-0f8e7d6c-5b4a-3921-8a7b-00000000000", None),  # a prefix of eight UUIDs
        ("gpu-0f8e7d6c-5b4a-3921-8a7b-000000000004", [4]),  # case as CUDA ignores it
        ("0,-1,3", [0]),  # CUDA stops at a negative number
        ("-1", []),
        ("", []),
    ],
)
def test_cuda_visible_devices_names_indices_or_uuids(
    eight_h100s: list[GpuInfo], visible: str, expected: list[int] | None
) -> None:
    if expected is None:
        with pytest.raises(ConfigError, match="matches 8 GPUs"):
            choose_gpus(eight_h100s, indices=None, visible_devices=visible)
        return
    choice = choose_gpus(eight_h100s, indices=None, visible_devices=visible)
    assert choice.uuids == tuple(fake_nvml.uuid(i) for i in expected)
    assert [g.index for g in choice.inventory(probe_hardware()).gpus] == expected


def test_without_a_choice_every_gpu_is_served(eight_h100s: list[GpuInfo]) -> None:
    choice = choose_gpus(eight_h100s, indices=None, visible_devices=None)
    assert choice == GpuChoice() and choice.environment() == {}
    assert len(choice.inventory(probe_hardware()).gpus) == 8


@pytest.mark.parametrize(
    ("indices", "visible", "message"),
    [
        ([8], None, "gpus (--gpu): there is no GPU 8: this host has 8 GPUs (indices 0 to 7)"),
        (None, "2,12", "CUDA_VISIBLE_DEVICES=2,12: there is no GPU 12: this host has 8 GPUs"),
        (None, "GPU-ffffffff", "no GPU has that UUID (this host has 8 GPUs"),
        (None, "MIG-0f8e7d6c", "MIG instances are not GPUs a worker can serve"),
        (None, f"3,{fake_nvml.uuid(3)}", "named twice"),
    ],
)
def test_a_gpu_that_is_not_there_is_a_clear_error(
    eight_h100s: list[GpuInfo], indices: list[int] | None, visible: str | None, message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        choose_gpus(eight_h100s, indices=indices, visible_devices=visible)
    assert message in str(refused.value) and refused.value.reason == "gpu_choice"


def test_a_host_without_gpus() -> None:
    # An inherited CUDA_VISIBLE_DEVICES on a CPU box makes a CPU worker, as CUDA would...
    assert choose_gpus([], indices=None, visible_devices="0") == GpuChoice()
    # ...but asking for a GPU by flag there is a mistake worth stopping for.
    with pytest.raises(ConfigError, match="no GPU 0: this host has no GPU NVML can see"):
        choose_gpus([], indices=[0], visible_devices=None)


def test_work_device_indices_are_positions_in_the_report(eight_h100s: list[GpuInfo]) -> None:
    hardware = choose_gpus(eight_h100s, indices=[3, 5], visible_devices=None).inventory(
        probe_hardware()
    )
    assert host_indices([0], hardware.gpus) == [3]
    assert host_indices([1, 0], hardware.gpus) == [5, 3]
    with pytest.raises(ValueError, match=r"no GPU \[2\]: it serves 2 \(device indices 0 to 1\)"):
        host_indices([0, 2], hardware.gpus)
    with pytest.raises(ValueError, match="it serves none"):
        host_indices([0], [])
    # A VM lease placed on "device 1" of this worker gets GPU 5's PCI address.
    assert gpu_pci_addresses(hardware, [1]) == ["0000:1d:00.0"]


@pytest.mark.parametrize(
    ("env", "toml", "expected"),
    [
        ({"BYTELEAP_GPUS": "3"}, "", [3]),
        ({"BYTELEAP_GPUS": "3,5"}, "", [3, 5]),
        ({"BYTELEAP_GPUS": "[1, 2]"}, "", None),  # JSON is not what an operator types
        ({}, "gpus = [2]\n", [2]),
        ({}, "gpus = 4\n", [4]),
        ({}, "", None),
    ],
)
def test_gpus_setting_from_env_and_toml(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    toml: str,
    expected: list[int] | None,
) -> None:
    config = tmp_path / "worker.toml"
    config.write_text("[worker]\n" + toml)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if env.get("BYTELEAP_GPUS", "").startswith("["):
        with pytest.raises(ConfigError, match="not a GPU index"):
            load_settings(WorkerSettings, config)
        return
    assert load_settings(WorkerSettings, config).gpus == expected


@pytest.mark.parametrize("bad", [[-1], [2, 2]])
def test_gpus_setting_refuses_repeats_and_negatives(bad: list[int]) -> None:
    with pytest.raises(ConfigError, match="distinct and non-negative"):
        load_settings(WorkerSettings, gpus=bad)


def _worker(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`byteleap worker` on a host whose NVML is the fake one (eight H100s)."""
    path = os.pathsep.join([str(FAKE_NVML_DIR), os.environ.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "byteleap.cli", "worker", "--home", str(tmp_path / "w"),
         "--miner", "wss://127.0.0.1:9/v1/worker", "--token", "unused", *args],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": path, "BYTELEAP_FAKE_NVML_GPUS": "8", **env},
    )  # fmt: skip


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (
            ["--gpu", "8"],
            {},
            "gpus (--gpu): there is no GPU 8: this host has 8 GPUs (indices 0 to 7)",
        ),
        (["--gpu", "1,9"], {}, "gpus (--gpu): there is no GPU 9: this host has 8 GPUs"),
        ([], {"CUDA_VISIBLE_DEVICES": "11"}, "CUDA_VISIBLE_DEVICES=11: there is no GPU 11"),
    ],
)
def test_worker_refuses_to_start_on_a_gpu_that_is_not_there(
    tmp_path: Path, args: list[str], env: dict[str, str], message: str
) -> None:
    result = _worker(tmp_path, *args, **env)
    assert result.returncode == 2, result.stderr
    assert f"config error: {message}" in result.stderr


def test_worker_refuses_a_gpu_flag_that_is_not_an_index(tmp_path: Path) -> None:
    result = _worker(tmp_path, "--gpu", "first")
    assert result.returncode == 2
    assert "'first' is not a GPU index" in result.stderr
