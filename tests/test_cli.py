"""The CLI as a user runs it: a real subprocess, exit codes and output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

COMMANDS = (
    "devnet",
    "chain",
    "validator",
    "miner",
    "worker",
    "gateway",
    "keys",
    "db",
    "config",
    "bench",
    "jobs",
)


def byteleap(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byteleap.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_help_lists_every_command() -> None:
    result = byteleap("--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


def test_config_show_prints_effective_config(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[validator]\nround_interval_s = 9\n")
    result = byteleap(
        "config",
        "show",
        "--role",
        "validator",
        "--config",
        str(path),
        env={"BYTELEAP_CHAIN__NETUID": "7"},
    )
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["round_interval_s"] == 9
    assert shown["chain"]["netuid"] == 7


def test_invalid_config_is_one_line_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[validator.chain]\nnetwork = "moonnet"\n')
    result = byteleap("config", "show", "--role", "validator", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "chain.network" in lines[0] and "moonnet" in lines[0]


def test_unknown_role_is_a_config_error() -> None:
    result = byteleap("config", "show", "--role", "oracle")
    assert result.returncode == 2
    assert "unknown role" in result.stderr


def test_keys_new_and_list(wallet_path: Path) -> None:
    created = byteleap("keys", "new", "alice", "--hotkey", "hk1", "--path", str(wallet_path))
    assert created.returncode == 0, created.stderr
    byteleap("keys", "new", "alice", "--hotkey", "hk2", "--path", str(wallet_path))
    listed = byteleap("keys", "list", "--path", str(wallet_path), "--json")
    rows = json.loads(listed.stdout)
    assert [(r["name"], r["hotkey"]) for r in rows] == [("alice", "hk1"), ("alice", "hk2")]
    assert rows[0]["coldkey_ss58"] == rows[1]["coldkey_ss58"]
    assert rows[0]["hotkey_ss58"] != rows[1]["hotkey_ss58"]
    assert rows[0]["hotkey_ss58"] in created.stdout


def test_bench_network_prints_one_json_object() -> None:
    result = byteleap("bench", "network", "--rounds", "3", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data["shares"]) >= {"honest", "lazy", "partial-compute", "low-precision"}
    assert 0 <= data["cheater_share"] <= 1


def test_bench_challenge_prints_one_json_object() -> None:
    result = byteleap("bench", "challenge", "--n", "200", "--repeats", "1", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["n"] == 200 and data["profile"] == "cpu-f64" and data["verify_ok"] is True
    for key in (
        "matmul_s",
        "pipeline_s",
        "pipeline_over_matmul",
        "verify_ms",
        "full_recompute_ms",
        "verify_speedup",
    ):
        assert data[key] > 0


def test_shell_completion_is_on() -> None:
    assert "--install-completion" in byteleap("--help").stdout
    completed = subprocess.run(
        [sys.executable, "-c", "import sys; sys.argv[0] = 'byteleap'; "
         "from byteleap.cli import main; main()"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "_BYTELEAP_COMPLETE": "complete_bash", "COMP_WORDS": "byteleap jobs su",
             "COMP_CWORD": "2"},
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.split() == ["submit"]
