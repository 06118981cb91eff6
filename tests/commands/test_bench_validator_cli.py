"""`byteleap bench validator` at a tiny scale: a real round (its own processes, TLS, btauth/1,
the store) passes every challenge and reports the validator's CPU by stage (speed is measured
by `make bench`)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from typer.testing import CliRunner

from byteleap.commands import bench as command

STAGES = {"sign", "tls", "parse", "verify", "store", "loop_other", "other_threads"}


def run(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(command.app, ["validator", *args, "--json"])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def check(report: dict[str, Any], workers: int, n: int) -> None:
    assert report["challenges"] == report["passed"] == workers, report["failed"]
    assert report["failed"] == {} and report["unreachable_miners"] == 0
    assert report["synthetic_leaves"] is True and "synthetic" in report["synthetic"]
    stages = report["stage_ms_per_challenge"]
    assert set(stages) == STAGES
    assert all(stages[s] > 0 for s in ("sign", "tls", "parse", "verify", "store"))
    # The stages split the process's CPU: what they leave is not negative beyond clock noise.
    assert sum(stages.values()) == pytest.approx(report["cpu_ms_per_challenge"], rel=0.02)
    covered = 240 * 0.6 / (report["cpu_ms_per_challenge"] / 1e3)
    assert report["covered_workers_per_core"] == pytest.approx(covered, rel=1e-3)
    # A row is n int32 entries, base64 in JSON: at least 8 rows of 4n bytes, times 4/3.
    assert report["reveal_bytes"] > 8 * 4 * n * 4 / 3
    assert report["miners_process_cpu_s"] > 0


def test_a_tiny_round_on_sqlite_passes_and_is_metered() -> None:
    report = run("--workers", "5", "--n", "256", "--store", "sqlite")
    check(report, 5, 256)
    assert report["store"] == "sqlite" and report["store_server_cpu_ms_per_challenge"] is None
    assert report["miners"] == 1


@pytest.mark.postgres
def test_a_round_of_three_miners_on_its_own_postgres_database(pg_database: str) -> None:
    report = run("--workers", "203", "--n", "512")
    check(report, 203, 512)
    assert report["store"] == "postgresql" and report["miners"] == 3
    assert report["store_server_cpu_ms_per_challenge"] > 0
