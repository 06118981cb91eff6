"""`byteleap chain serve | register | stake | metagraph`, each run as the real command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import bittensor as bt
import httpx
import pytest

from byteleap.chain.port import Metagraph

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "byteleap.cli", "chain"]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60, check=False)


def start_serve(tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    config = tmp_path / "chain.toml"
    config.write_text("[chain]\ntempo = 3\nimmunity_period = 1\nlog_level = 'WARNING'\n")
    log = (tmp_path / "serve.log").open("ab")
    proc = subprocess.Popen(
        [*CLI, "serve", "--config", str(config), "--port", str(port),
         "--db", str(tmp_path / "chain.db"), "--block-time", "0.1"],
        stdout=log, stderr=log,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()
        try:
            httpx.get(f"http://127.0.0.1:{port}/v1/info", timeout=1).raise_for_status()
            return proc
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("chain serve did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def serve(tmp_path: Path, free_port: Callable[[], int]) -> Iterator[tuple[str, Callable[[], None]]]:
    port = free_port()
    procs = [start_serve(tmp_path, port)]

    def restart() -> None:
        stop(procs[-1])
        procs.append(start_serve(tmp_path, port))

    try:
        yield f"http://127.0.0.1:{port}", restart
    finally:
        for proc in procs:
            stop(proc)


def test_register_stake_metagraph_and_restart(
    serve: tuple[str, Callable[[], None]], wallet_path: Path
) -> None:
    url, restart = serve
    hotkeys = {}
    for name in ("alice", "bob"):
        wallet = bt.Wallet(name, "hot", path=str(wallet_path))
        wallet.create_new_coldkey(use_password=False, suppress=True)
        wallet.create_new_hotkey(use_password=False, suppress=True)
        hotkeys[name] = wallet.hotkey.ss58_address
    keys = ["--hotkey", "hot", "--wallet-path", str(wallet_path), "--url", url]

    for uid, name in enumerate(("alice", "bob")):
        done = run_cli("register", "--wallet", name, *keys)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == {"hotkey": hotkeys[name], "uid": uid}
    done = run_cli("stake", "--wallet", "alice", *keys, "--amount", "42.5")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["stake"] == 42.5

    done = run_cli("metagraph", "--url", url, "--json")
    assert done.returncode == 0, done.stderr
    graph = Metagraph.model_validate_json(done.stdout)
    assert [(n.uid, n.hotkey, n.stake) for n in graph.neurons] == [
        (0, hotkeys["alice"], 42.5),
        (1, hotkeys["bob"], 0.0),
    ]
    assert [n.uid for n in graph.validators()] == [0]

    restart()
    table = run_cli("metagraph", "--url", url)
    assert table.returncode == 0, table.stderr
    assert hotkeys["alice"] in table.stdout and hotkeys["bob"] in table.stdout
    assert "42.5000" in table.stdout
    again = Metagraph.model_validate_json(run_cli("metagraph", "--url", url, "--json").stdout)
    assert again.block > graph.block
    assert again.neurons == graph.neurons


def test_cli_errors_are_clear(serve: tuple[str, Callable[[], None]], wallet_path: Path) -> None:
    url, _ = serve
    wallet = bt.Wallet("carol", "hot", path=str(wallet_path))
    wallet.create_new_coldkey(use_password=False, suppress=True)
    wallet.create_new_hotkey(use_password=False, suppress=True)
    keys = ["--wallet", "carol", "--hotkey", "hot", "--wallet-path", str(wallet_path)]

    done = run_cli("stake", *keys, "--url", url, "--amount", "5")
    assert done.returncode == 1
    assert "not_registered" in done.stderr and "not registered" in done.stderr

    done = run_cli("stake", *keys, "--url", url, "--amount", "-5")
    assert done.returncode == 1 and "malformed" in done.stderr

    done = run_cli("metagraph", "--adapter", "ethereum", "--url", url)
    assert done.returncode == 2 and "adapter" in done.stderr

    done = run_cli("metagraph", "--url", "http://127.0.0.1:9", "--json")
    assert done.returncode == 1 and "unavailable" in done.stderr
    assert done.stdout == ""
