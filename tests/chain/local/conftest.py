"""Fixtures: a real `byteleap chain serve` subprocess and real bittensor wallets."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import bittensor as bt
import httpx
import pytest

CHAIN_TOML = """
[chain]
block_time_s = 0.1
tempo = 5
max_uids = 8
immunity_period = 2
max_validators = 2
weights_rate_limit = 4
request_max_age_s = 30
log_level = "WARNING"
"""


def pick_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ChainProcess:
    """`python -m byteleap.cli chain serve` on a free port, restartable on the same db."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.db = workdir / "chain.db"
        self.config = workdir / "chain.toml"
        self.config.write_text(CHAIN_TOML)
        self.port = pick_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.workdir / "serve.log").open("ab")
        cmd = [
            sys.executable, "-m", "byteleap.cli", "chain", "serve", "--config", str(self.config),
            "--port", str(self.port), "--db", str(self.db),
        ]  # fmt: skip
        self._proc = subprocess.Popen(cmd, stdout=log, stderr=log, cwd=self.workdir)
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                log_text = (self.workdir / "serve.log").read_text()
                raise RuntimeError(f"chain serve exited: {log_text}")
            try:
                if httpx.get(f"{self.url}/v1/info", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError("chain serve did not come up in 30 s")

    def stop(self) -> None:
        if self._proc is None:
            return
        if self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


@pytest.fixture
def chain_process(tmp_path: Path) -> Iterator[ChainProcess]:
    process = ChainProcess(tmp_path)
    process.start()
    try:
        yield process
    finally:
        process.stop()


def make_wallet(path: Path, name: str) -> bt.Wallet:
    wallet = bt.Wallet(name, "default", path=str(path))
    wallet.create_new_coldkey(use_password=False, suppress=True)
    wallet.create_new_hotkey(use_password=False, suppress=True)
    return wallet


@pytest.fixture
def wallets(tmp_path: Path) -> dict[str, bt.Wallet]:
    return {name: make_wallet(tmp_path / "wallets", name) for name in ("validator", "m1", "m2")}
