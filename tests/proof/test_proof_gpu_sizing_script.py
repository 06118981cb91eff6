"""``bench/gpu_sizing.py``: where there is no GPU it says so in one JSON object and exits 0;
its measurement runs end to end with the device calls stood in for (numpy solves)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

import byteleap.proof
from byteleap.proof import ChallengeSpec, Solution, solve

SCRIPT = Path(__file__).parents[2] / "bench" / "gpu_sizing.py"


def test_the_script_reports_no_gpu_cleanly() -> None:
    env = os.environ | {"CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is False and report["gpu"] is None
    assert report["message"].startswith("no GPU")


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("gpu_sizing", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_measurement_reports_every_field(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    script = _script()
    cuda = SimpleNamespace(
        synchronize=lambda: None,
        reset_peak_memory_stats=lambda: None,
        max_memory_allocated=lambda: 2_500_000,
        max_memory_reserved=lambda: 2_600_000,
        empty_cache=lambda: None,
    )
    gpu = {"gpu": "stand-in", "memory_total_bytes": 3_000_000, "memory_free_bytes": 3_000_000}
    monkeypatch.setattr(script, "_gpu", lambda: (SimpleNamespace(cuda=cuda), dict(gpu)))
    monkeypatch.setattr(script, "CALIBRATION_N", 64)

    def on_cpu(spec: ChallengeSpec, *_: Any) -> Solution:
        return solve(spec)

    monkeypatch.setattr(byteleap.proof, "solve", on_cpu)
    script.main(["--json", "--profiles", "cuda-i8", "--target-s", "0.2", "--repeats", "2"])
    report = json.loads(capsys.readouterr().out)
    (result,) = report["results"]
    assert "error" not in result, result
    assert result["n"] == 256 and result["products"] > 1  # 3 MB holds several 256² products
    assert result["verify_ok"] is True
    assert 0.75 <= result["working_set_of_memory"] <= 0.9
    assert len(result["solve_s"]) == 2
