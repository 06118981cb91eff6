"""`byteleap bench startup`: how long the CLI takes to start, per customer command.

Each command's ``--help`` runs through the real entry point (``byteleap.cli:main``) in fresh
interpreters; the median wall time is the headline. One more run under ``-X importtime`` names
the top-level imports that cost the most, and which heavy (server-only) packages were loaded.
A server command (``validator --help``) runs in the same benchmark as the baseline, so the
ratio compares two numbers taken on the same machine at the same time.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

CUSTOMER: tuple[tuple[str, ...], ...] = (
    ("--help",),
    ("jobs", "--help"),
    ("jobs", "submit", "--help"),
    ("leases", "--help"),
    ("services", "--help"),
    ("balance", "--help"),
    ("usage", "--help"),
    ("prices", "--help"),
    ("status", "--help"),
)
BASELINE: tuple[str, ...] = ("validator", "--help")

# Packages a customer's CLI should never load (tests/test_light_client.py holds it to that).
HEAVY = (
    "sqlalchemy",
    "alembic",
    "torch",
    "numpy",
    "bittensor",
    "pynvml",
    "psutil",
    "byteleap.store",
    "byteleap.worker",
    "byteleap.validator",
    "byteleap.miner",
    "byteleap.gateway",
)

_ENTRY = "import sys; sys.argv[0] = 'byteleap'; from byteleap.cli import main; main()"
_TIMEOUT_S = 300.0


def _run(args: tuple[str, ...], *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *flags, "-c", _ENTRY, *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        timeout=_TIMEOUT_S,
        check=True,
    )


def parse_importtime(stderr: str) -> list[tuple[str, int, int]]:
    """(module, nesting depth, cumulative µs) for each line ``-X importtime`` wrote."""
    found = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        _, cumulative, name = line[len("import time:") :].split("|")
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2
        found.append((name.strip(), depth, int(cumulative)))
    return found


def _is_heavy(module: str) -> bool:
    return any(module == h or module.startswith(h + ".") for h in HEAVY)


def _heavy_root(module: str) -> str:
    return next(h for h in HEAVY if module == h or module.startswith(h + "."))


def measure(args: tuple[str, ...], repeats: int, top: int = 5) -> dict[str, Any]:
    """One command: median wall seconds over ``repeats`` runs, then its costliest imports."""
    walls = []
    for _ in range(repeats):
        started = time.perf_counter()
        _run(args)
        walls.append(time.perf_counter() - started)
    imports = parse_importtime(_run(args, "-X", "importtime").stderr)
    outermost = sorted((i for i in imports if i[1] == 0), key=lambda i: -i[2])
    return {
        "command": " ".join(("byteleap", *args)),
        "median_s": round(statistics.median(walls), 4),
        "min_s": round(min(walls), 4),
        "modules": len(imports),
        "top_imports": [
            {"module": m, "cumulative_ms": round(us / 1000, 1)} for m, _, us in outermost[:top]
        ],
        "heavy": sorted({_heavy_root(m) for m, _, _ in imports if _is_heavy(m)}),
    }


def run_startup_bench(repeats: int) -> dict[str, Any]:
    baseline = measure(BASELINE, repeats)
    commands = [measure(args, repeats) for args in CUSTOMER]
    for row in commands:
        row["baseline_ratio"] = round(baseline["median_s"] / row["median_s"], 2)
    return {
        "repeats": repeats,
        "python": sys.version.split()[0],
        "commands": commands,
        "baseline": baseline,
    }
