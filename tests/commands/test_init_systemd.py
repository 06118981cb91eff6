"""`byteleap init ROLE --systemd DIR`: units systemd-analyze verifies (its ExecStart the real
venv's byteleap), one per GPU for `init worker --all-gpus` over the fake NVML's 8 GPUs."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from byteleap.cli import app
from byteleap.worker import hardware_probe
from fake_nvml import pynvml as fake_nvml

SYSTEMD_ANALYZE = shutil.which("systemd-analyze") or "/usr/bin/systemd-analyze"
BYTELEAP = Path(sys.executable).parent / "byteleap"
MINER_URL = "wss://203.0.113.7:8091/v1/worker"

pytestmark = pytest.mark.skipif(
    not Path(SYSTEMD_ANALYZE).exists() or not BYTELEAP.exists(),
    reason="needs systemd-analyze and the venv's byteleap executable",
)


def init(tmp_path: Path, role: str, *args: str) -> Result:
    argv = ["init", role, "--yes", "--home", str(tmp_path / "home")]
    argv += ["--systemd", str(tmp_path / "units"), "--user", "byteleap", "--exec", str(BYTELEAP)]
    if role != "worker":
        argv += ["--netuid=4", "--wallet-path", str(tmp_path / "wallets"), "--no-password"]
    return CliRunner().invoke(app, [*argv, *args])


def verify(*units: Path) -> None:
    """systemd-analyze verify passes and says nothing: an unknown or misspelt key is only a
    warning to it (exit 0), so its output must be empty too."""
    done = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", *map(str, units)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "" and done.stderr.strip() == "", done.stderr


def service(unit: Path) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in unit.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            fields.setdefault(key, []).append(value)
    return fields


@pytest.mark.parametrize("role", ["miner", "validator", "gateway", "worker"])
def test_one_verified_unit_per_role(tmp_path: Path, role: str) -> None:
    extra = [f"--miner-url={MINER_URL}"] if role == "worker" else []
    result = init(tmp_path, role, *extra)
    assert result.exit_code == 0, result.output
    unit = tmp_path / "units" / f"byteleap-{role}.service"
    assert sorted(p.name for p in (tmp_path / "units").iterdir()) == [unit.name]
    verify(unit)
    fields = service(unit)
    assert fields["Restart"] == ["on-failure"] and fields["User"] == ["byteleap"]
    assert fields["After"] == ["network-online.target"]
    config = tmp_path / "home" / f"{role}.toml"
    command = [str(BYTELEAP), role] if role == "worker" else [str(BYTELEAP), role, "run"]
    assert shlex.split(fields["ExecStart"][0]) == [*command, "--config", str(config)]
    if role == "worker":  # nothing that hides /dev/nvidia* or stops setuid helpers
        assert not {"PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock"} & set(fields)
        assert "NoNewPrivileges" not in fields
    else:
        assert fields["NoNewPrivileges"] == ["yes"] and fields["PrivateDevices"] == ["yes"]
        assert fields["ReadWritePaths"] == [str(tmp_path / "home")]


@pytest.mark.parametrize("role", ["validator", "gateway"])
def test_a_postgresql_store_orders_the_unit_after_postgresql(tmp_path: Path, role: str) -> None:
    result = init(tmp_path, role, "--store-url=postgresql+asyncpg://postgres@127.0.0.1/byteleap")
    assert result.exit_code == 0, result.output
    unit = tmp_path / "units" / f"byteleap-{role}.service"
    verify(unit)
    assert service(unit)["After"] == ["network-online.target postgresql.service"]


def test_all_gpus_one_unit_per_gpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware_probe, "pynvml", fake_nvml)
    monkeypatch.setenv("BYTELEAP_FAKE_NVML_GPUS", "8")
    result = init(tmp_path, "worker", f"--miner-url={MINER_URL}", "--all-gpus")
    assert result.exit_code == 0, result.output
    units = [tmp_path / "units" / f"byteleap-worker-gpu{i}.service" for i in range(8)]
    assert sorted((tmp_path / "units").iterdir()) == sorted(units)
    verify(*units)
    config = tmp_path / "home" / "worker.toml"
    for i, unit in enumerate(units):
        argv = shlex.split(service(unit)["ExecStart"][0])
        home = tmp_path / "home" / f"worker-gpu{i}"
        assert argv == [
            str(BYTELEAP),
            "worker",
            "--config",
            str(config),
            "--gpu",
            str(i),
            "--home",
            str(home),
        ]


def test_all_gpus_without_a_gpu_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hardware_probe, "pynvml", fake_nvml)
    monkeypatch.setenv("BYTELEAP_FAKE_NVML_GPUS", "0")
    result = init(tmp_path, "worker", f"--miner-url={MINER_URL}", "--all-gpus")
    assert result.exit_code == 2 and "NVML shows no GPU" in result.stderr
    assert not (tmp_path / "units").exists()
    assert not (tmp_path / "home" / "worker.toml").exists()


def test_paths_with_spaces_and_percent_signs_survive(tmp_path: Path) -> None:
    home = tmp_path / "my 100% home"
    argv = ["init", "worker", "--yes", "--home", str(home), f"--miner-url={MINER_URL}"]
    argv += ["--systemd", str(tmp_path / "units"), "--exec", str(BYTELEAP)]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 0, result.output
    unit = tmp_path / "units" / "byteleap-worker.service"
    verify(unit)
    exec_start = service(unit)["ExecStart"][0]
    assert shlex.split(exec_start.replace("%%", "%"))[3] == str(home / "worker.toml")
