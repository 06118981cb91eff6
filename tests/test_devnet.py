"""`byteleap devnet --json` end to end: the summary contract and a clean exit."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from rich.console import Console

from byteleap.devnet import DevnetOptions, run_devnet
from byteleap.devnet.run import STEPS
from byteleap.devnet.state import CHEATS
from store_fixtures import _admin as admin_sql

pytestmark = pytest.mark.slow


def _children_of_devnet(home: Path) -> list[psutil.Process]:
    """Every process of the devnet: its roles, and what its workers ran (by working dir)."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        cwd = process.info["cwd"] or ""
        if ("byteleap.cli" in cmdline and str(home) in cmdline) or cwd.startswith(str(home)):
            found.append(process)
    return found


def test_devnet_runs_green_stays_up_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    home = tmp_path / "devnet"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "byteleap.cli",
            "devnet",
            "--json",
            "--keep-running",
            "--home",
            str(home),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        running = _wait_for_line(process, "devnet is running", timeout_s=240)
        gateway = re.search(r"gateway (http://127\.0\.0\.1:\d+)", running)
        assert gateway is not None, running
        assert httpx.get(f"{gateway.group(1)}/v1/health", timeout=5).status_code == 200
        key = re.search(r"customer API key (\S+);", running)
        assert key is not None, running
        jobs = httpx.get(
            f"{gateway.group(1)}/v1/jobs",
            headers={"Authorization": f"Bearer {key.group(1)}"},
            timeout=5,
        )
        assert jobs.status_code == 200 and len(jobs.json()) >= 2, jobs.text[:500]
        assert len(_children_of_devnet(home)) >= 1 + 1 + 3 + 3 * 2 + 1  # chain…gateway
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout)  # stdout holds the JSON object and nothing else
    assert summary["ok"] is True
    assert [s["name"] for s in summary["steps"]] == [name for name, _ in STEPS]
    assert all(step["ok"] and step["seconds"] >= 0 for step in summary["steps"])
    assert summary["chain"]["neurons"] == 4
    assert summary["chain"]["block"] > 0
    assert len(summary["miners"]) == 3
    for miner in summary["miners"]:
        assert miner["cheater"] is None
        assert miner["workers_online"] == 2
        assert miner["hotkey"].startswith("5")
        assert miner["challenges_passed"] >= 3 and miner["challenges_failed"] == 0
        assert miner["wrong_output"] is False
    job, validated = summary["jobs"]
    assert job["state"] == "succeeded" and job["worker"].startswith("w-")
    assert job["seconds"] > 0 and job["validated"] is None
    assert job["artifacts"] == 1  # the file it wrote, kept by the gateway
    # A deterministic job re-executed on another miner's worker: the results agree.
    assert validated["state"] == "succeeded" and validated["validated"] == "match"
    (lease,) = summary["leases"]
    assert lease["state"] == "released" and lease["receipts"] >= 3 and lease["amount"] > 0
    assert lease["exec_ok"] is True
    # Receipts (the lease's and the service replicas') moved lease scores: each miner's part of
    # the network's counted revenue (docs/scoring.md), so together they make 1.
    assert sum(m["lease_score"] for m in summary["miners"]) == pytest.approx(1.0, abs=1e-5)
    (service,) = summary["services"]
    assert service["replicas_max"] >= 3 and service["replicas_after"] == 1
    assert service["requests_ok"] > 0 and service["requests_failed"] == 0
    assert service["cost"] > 0
    # A chat completion streamed from the OpenAI-compatible service (torch is installed here).
    inference = summary["inference"]
    assert inference["skipped"] is None and inference["tokens"] >= 1 and inference["text"]
    assert 0 < inference["first_token_s"] <= inference["seconds"]
    # Its worker killed mid-run, a checkpointing job resumed elsewhere from the kept step.
    checkpoint = summary["checkpoint"]
    assert checkpoint["state"] == "succeeded" and checkpoint["attempts"] == 2, checkpoint
    assert checkpoint["resumed_from"] >= checkpoint["kept_step"] >= 20, checkpoint
    assert checkpoint["finished_on"] != checkpoint["killed_worker"]
    assert _children_of_devnet(home) == []


def _wait_for_line(process: subprocess.Popen[str], text: str, *, timeout_s: float) -> str:
    """The first stderr line holding ``text``; fails with what was printed so far.

    Reads the pipe's file descriptor itself: ``select`` sees only the descriptor, so a
    buffered ``readline`` could leave the awaited line in Python's buffer, unseen, while the
    devnet (which prints nothing more once it is up) keeps the descriptor quiet."""
    assert process.stderr is not None
    fd = process.stderr.fileno()
    seen = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        seen += chunk
        complete = seen.decode(errors="replace").rpartition("\n")[0]
        for line in complete.splitlines():
            if text in line:
                return line
    printed = seen.decode(errors="replace")[-3000:]
    raise AssertionError(f"no {text!r} in the devnet's output:\n{printed}")


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
@pytest.mark.adversarial
def test_devnet_starts_every_cheat_and_reports_the_cheaters_weight_share(tmp_path: Path) -> None:
    """Every cheat runs as real processes, and together they end under 1 % of the weight (one
    devnet for all of them: each run costs a minute of CI)."""
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
            "2",
            "--cheaters",
            str(len(CHEATS)),
        ],
        capture_output=True,
        text=True,
        timeout=420,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    miners = summary["miners"]
    by_cheat: dict[str, list[dict[str, Any]]] = {}
    for miner in miners:
        by_cheat.setdefault(miner["cheater"] or "honest", []).append(miner)
    assert sorted(by_cheat) == sorted([*CHEATS, "honest"])
    assert len(by_cheat["shared-hotkeys"]) == 2 and len(by_cheat["honest"]) == 2
    one = {cheat: found[0] for cheat, found in by_cheat.items()}
    # Wrong products and a card it does not have: no pass, no weight.
    for name in ("lazy", "low-precision", "model-spoof"):
        assert one[name]["challenges_passed"] == 0 and one[name]["challenges_failed"] > 0, name
        assert one[name]["weight"] < 0.01, name
    # Half the rows: a reveal of 8 rows lands only in computed ones about 1 time in 200
    # (15 of 3,000 at n = 256), so it may pass now and then; its first caught wrong answer
    # bans it for the rest of the window, so those passes earn nothing.
    partial = one["partial-compute"]
    assert partial["challenges_failed"] >= 4 * max(1, partial["challenges_passed"])
    assert partial["challenge_score"] == 0.0 and partial["weight"] < 0.01
    # Refused reveals fail; a reveal of 8 rows finds only computed ones 1 time in ~280.
    refuser = one["refuse-reveal"]
    assert refuser["challenges_failed"] >= 4 * max(1, refuser["challenges_passed"])
    assert refuser["weight"] < 0.02
    # Four workers on one card (a device lock, each challenge paced to a card's time): at most
    # one commits inside a deadline, the rest fail, and failures cancel passes.
    multiplexer = one["multiplex"]
    assert multiplexer["workers_online"] == 4
    assert multiplexer["challenges_failed"] >= 2 * multiplexer["challenges_passed"]
    assert multiplexer["weight"] < 0.01
    # One box under two hotkeys: every worker of both is flagged as a duplicate.
    for twin in by_cheat["shared-hotkeys"]:
        assert twin["duplicated"] == twin["workers_online"] == 2
    assert all(m["duplicated"] == 0 for m in miners if m["cheater"] != "shared-hotkeys")
    # A worker claiming cores no server has is refused at enrollment, so the wash lease that
    # would single it out finds nothing to rent.
    (wash,) = summary["wash_leases"]
    assert wash["miner"] == one["wash-lease"]["hotkey"]
    assert one["wash-lease"]["workers_online"] == 0 and wash["refused"] is not None
    assert wash["paid"] == 0.0
    # Caught returning a customer wrong results: nothing, though it passes its challenges.
    # Re-executing its jobs on other miners catches it; it loses its lease score for the
    # window, and no honest miner is blamed in its place.
    liar = one["wrong-output"]
    assert liar["wrong_output"] is True and liar["lease_score"] == 0.0
    assert liar["weight"] < 0.01
    assert len(by_cheat["honest"]) == 2 and not any(m["wrong_output"] for m in by_cheat["honest"])
    shares = [m["weight_share"] for m in miners]
    assert sum(shares) == pytest.approx(1.0, abs=1e-3)
    cheaters = sum(m["weight_share"] for m in miners if m["cheater"] is not None)
    assert summary["cheater_share"] == pytest.approx(cheaters, abs=1e-5)
    assert summary["cheater_share"] < 0.01


@pytest.mark.postgres
def test_devnet_runs_over_postgresql_with_two_gateway_replicas(
    tmp_path: Path, pg_database: str
) -> None:
    """The main job over PostgreSQL, its customer talking to two gateway replicas, one of
    which runs the passes (issue 18: under 3 minutes)."""
    home = tmp_path / "devnet"
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{pg_database}_devnet"
    began = time.monotonic()
    try:
        result = subprocess.run(
            [
                *(sys.executable, "-m", "byteleap.cli", "devnet", "--json"),
                *("--home", str(home), "--miners", "2"),
                *("--store", "postgres", "--postgres-url", url, "--gateways", "2"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        asyncio.run(admin_sql(f'DROP DATABASE IF EXISTS "{pg_database}_devnet" WITH (FORCE)'))
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout)
    assert summary["ok"] and all(step["ok"] for step in summary["steps"])
    assert took < 180, took
    assert "gateway replicas: http://127.0.0.1:" in result.stderr


def test_more_than_one_gateway_needs_postgresql(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "byteleap.cli",
            "devnet",
            "--home",
            str(tmp_path),
            "--gateways",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0 and "--store postgres" in result.stderr
