"""`byteleap worker` serves Prometheus metrics on `metrics_port`, linked to a miner or not."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from byteleap.net.enrollment import EnrollmentToken


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_a_worker_serves_its_metrics_while_it_retries_its_miner(tmp_path: Path) -> None:
    # Nobody listens at the miner's address: the worker keeps retrying, and its metrics say
    # it is not connected and has answered no challenge yet.
    token = EnrollmentToken(secret=secrets.token_hex(8), miner_public_key="00" * 32).encode()
    port = _free_port()
    worker = subprocess.Popen(
        [
            sys.executable, "-m", "byteleap.cli", "worker",
            "--miner", f"wss://127.0.0.1:{_free_port()}/v1/worker",
            "--token", token, "--home", str(tmp_path / "worker"),
        ],
        env={**os.environ, "BYTELEAP_METRICS_PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
                break
            except httpx.HTTPError:
                assert worker.poll() is None, worker.communicate()[1].decode()[-2000:]
                assert time.monotonic() < deadline, "no /metrics from the worker"
                time.sleep(0.2)
    finally:
        worker.kill()
        worker.communicate()
    assert "byteleap_worker_connected 0.0" in text
    for outcome in ("committed", "revealed", "aborted"):
        assert f'byteleap_worker_challenges_total{{outcome="{outcome}"}} 0.0' in text
    assert "byteleap_worker_solve_seconds_count 0.0" in text
