"""`byteleap bench startup`: the CLI's start-up benchmark, run once per command."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from byteleap.devnet.startup_bench import BASELINE, CUSTOMER, parse_importtime

IMPORTTIME = """\
import time: self [us] | cumulative | imported package
import time:       120 |        120 |     _io
import time:       300 |        420 |   rich.box
import time:      1000 |       1420 | rich
import time:        50 |       9000 | byteleap.cli
"""


def test_parse_importtime_reads_depth_and_cumulative() -> None:
    assert parse_importtime(IMPORTTIME) == [
        ("_io", 2, 120),
        ("rich.box", 1, 420),
        ("rich", 0, 1420),
        ("byteleap.cli", 0, 9000),
    ]


@pytest.mark.slow
def test_bench_startup_once() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "byteleap.cli", "bench", "startup", "--repeats", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["repeats"] == 1
    rows = result["commands"]
    assert [row["command"] for row in rows] == [" ".join(("byteleap", *a)) for a in CUSTOMER]
    for row in rows:
        assert row["median_s"] > 0 and row["baseline_ratio"] > 0
        assert row["top_imports"] and row["top_imports"][0]["cumulative_ms"] > 0
        assert row["heavy"] == [], row["command"]
    baseline = result["baseline"]
    assert baseline["command"] == " ".join(("byteleap", *BASELINE))
    # The validator's config loads the proof package (numpy): the heavy column sees it.
    assert "numpy" in baseline["heavy"]
