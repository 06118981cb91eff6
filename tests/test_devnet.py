"""`byteleap devnet --json` end to end: the summary contract and a clean exit."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from byteleap.devnet import DevnetOptions, run_devnet

pytestmark = pytest.mark.slow


def _children_of_devnet(home: Path) -> list[psutil.Process]:
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "byteleap.cli" in cmdline and str(home) in cmdline:
            found.append(process)
    return found


def test_devnet_json_summary(tmp_path: Path) -> None:
    home = tmp_path / "devnet"
    result = subprocess.run(
        [sys.executable, "-m", "byteleap.cli", "devnet", "--json", "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)  # stdout holds the JSON object and nothing else
    assert summary["ok"] is True
    assert [s["name"] for s in summary["steps"]] == [
        "keys",
        "chain",
        "register",
        "miners",
        "workers",
        "validator",
        "gateway",
        "job",
        "lease",
        "weights",
        "metagraph",
    ]
    assert all(step["ok"] and step["seconds"] >= 0 for step in summary["steps"])
    assert summary["chain"]["neurons"] == 3
    assert summary["chain"]["block"] > 0
    assert len(summary["miners"]) == 2
    for miner in summary["miners"]:
        assert miner["cheater"] is None
        assert miner["workers_online"] == 2
        assert miner["hotkey"].startswith("5")
    (job,) = summary["jobs"]
    assert job["state"] == "succeeded" and job["worker"].startswith("w-")
    assert job["validated"] is None and job["seconds"] > 0
    (lease,) = summary["leases"]
    assert lease["state"] == "released" and lease["receipts"] >= 3 and lease["amount"] > 0
    # The leased miner's receipts gave it the whole lease score.
    assert sorted(m["lease_score"] for m in summary["miners"]) == [0.0, 1.0]
    assert _children_of_devnet(home) == []


async def test_a_failed_step_ends_the_run_red_and_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "devnet"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        options = DevnetOptions(home=home, chain_port=taken.getsockname()[1], startup_timeout_s=5)
        summary = await run_devnet(options, Console(file=io.StringIO()))
    assert summary.ok is False
    assert [(s.name, s.ok) for s in summary.steps] == [("keys", True), ("chain", False)]
    assert "chain did not start" in (summary.steps[-1].error or "")
    assert _children_of_devnet(home) == []


@pytest.mark.adversarial
def test_devnet_cheaters_get_no_weight(tmp_path: Path) -> None:
    home = tmp_path / "devnet"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "byteleap.cli",
            "devnet",
            "--json",
            "--home",
            str(home),
            "--miners",
            "1",
            "--cheaters",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    miners = json.loads(result.stdout)["miners"]
    cheaters = [m for m in miners if m["cheater"] is not None]
    assert sorted(m["cheater"] for m in cheaters) == ["lazy", "partial-compute"]
    for cheater in cheaters:
        assert cheater["challenges_passed"] == 0 and cheater["challenges_failed"] > 0
        assert cheater["weight"] < 0.01
    (honest,) = [m for m in miners if m["cheater"] is None]
    assert honest["weight"] > 0.99
