"""From `byteleap init` to a working network: each role is set up non-interactively into a
temporary home (the local devnet chain selected by flag), started from the config init wrote,
and does its work (the worker enrolls, the validator's round passes its challenge, the gateway
answers); stopped, `byteleap doctor` then passes for every role on the same configs."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from byteleap.chain.local.client import LocalChain
from byteleap.cli import app
from byteleap.keys import load_wallet
from byteleap.net.miner_client import MinerCallError, MinerClient
from local_chain import free_port, start_chain

pytestmark = pytest.mark.slow

#: Checks that must pass (not skip) for each role on this host, which has no GPU.
EXPECTED_OK = {
    "miner": {"port miner", "wallet", "chain", "registered", "axon", "disk"},
    "worker": {"disk"},
    "validator": {"wallet", "chain", "registered", "permit", "store", "store schema", "disk"},
    "gateway": {"tls", "port rest", "port grpc", "wallet", "registered", "permit", "store"},
}


def _cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (args, result.output)
    return result.output


def _until(what: str, check: Callable[[], bool], timeout_s: float, logs: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            tails = {p.name: p.read_text(errors="replace")[-1500:] for p in logs.glob("*.log")}
            raise AssertionError(f"timed out waiting until {what}; logs: {tails}")
        time.sleep(0.3)


class Roles:
    """The role processes, each logging to ``<root>/logs/<name>.log``; stopped on exit."""

    def __init__(self, root: Path) -> None:
        self.logs = root / "logs"
        self.logs.mkdir()
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, name: str, *args: str) -> None:
        with (self.logs / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "byteleap.cli", *args],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip

    def alive(self) -> bool:
        dead = {n: p.returncode for n, p in self.processes.items() if p.poll() is not None}
        assert not dead, f"exited: {dead}; see {self.logs}"
        return True

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


@pytest.fixture
def chain_url(tmp_path: Path) -> Iterator[str]:
    port = free_port()
    chain = start_chain(tmp_path, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(chain.pid, signal.SIGTERM)
        chain.wait(15)


async def _permit(chain_url: str, wallets: Path) -> None:
    validator = load_wallet("v", path=wallets)
    async with LocalChain(chain_url, timeout_s=10) as chain:
        await chain.register(validator)
        await chain.add_stake(validator, 1000.0)
        deadline = time.monotonic() + 60
        while not (
            (neuron := (await chain.metagraph()).by_hotkey(validator.hotkey.ss58_address))
            and neuron.validator_permit
        ):
            assert time.monotonic() < deadline, "the validator never got its permit"
            await asyncio.sleep(0.2)


async def _idle_workers(chain_url: str, wallets: Path) -> int:
    validator, miner = load_wallet("v", path=wallets), load_wallet("m", path=wallets)
    async with LocalChain(chain_url, timeout_s=10) as chain:
        neuron = (await chain.metagraph()).by_hotkey(miner.hotkey.ss58_address)
    if neuron is None or not neuron.certificate:
        return 0
    try:
        async with MinerClient(validator, neuron, timeout_s=5) as client:
            return sum(1 for w in (await client.workers()).workers if w.state == "idle")
    except MinerCallError:
        return 0


def _passed_challenges(store: Path) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        try:
            row = db.execute("select count(*) from challenges where status = 'passed'").fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return 0
    return int(row[0])


def test_init_every_role_run_the_network_then_doctor_passes(tmp_path: Path, chain_url: str) -> None:
    wallets, store = tmp_path / "wallets", tmp_path / "validator" / "validator.db"
    miner_port, gateway_port = free_port(), free_port()
    chain = ["--yes", "--netuid", "1", "--chain", "local", "--chain-url", chain_url]
    keys = ["--wallet-path", str(wallets), "--no-password"]
    store_url = f"sqlite+aiosqlite:///{store}"
    configs = {role: tmp_path / role / f"{role}.toml" for role in ("miner", "worker")}
    configs |= {role: tmp_path / role / f"{role}.toml" for role in ("validator", "gateway")}
    _cli("init", "validator", "--home", str(tmp_path / "validator"), *chain, *keys,
         "--wallet-name", "v", "--store-url", store_url)  # fmt: skip
    _cli("init", "gateway", "--home", str(tmp_path / "gateway"), *chain, *keys,
         "--wallet-name", "v", "--store-url", store_url, "--host", "127.0.0.1",
         "--port", str(gateway_port), "--grpc-port", str(free_port()))  # fmt: skip
    _cli("init", "miner", "--home", str(tmp_path / "miner"), *chain, *keys,
         "--wallet-name", "m", "--host", "127.0.0.1", "--port", str(miner_port),
         "--external-ip", "127.0.0.1")  # fmt: skip
    asyncio.run(_permit(chain_url, wallets))

    roles = Roles(tmp_path)
    try:
        roles.start("miner", "miner", "run", "--config", str(configs["miner"]))
        token = _cli("miner", "token", "new", "--config", str(configs["miner"])).strip()
        worker_url = f"wss://127.0.0.1:{miner_port}/v1/worker"
        _cli("init", "worker", "--yes", "--home", str(tmp_path / "worker"),
             "--miner-url", worker_url, "--token", token)  # fmt: skip
        roles.start("worker", "worker", "--config", str(configs["worker"]))
        _until(
            "the miner lists its worker idle",
            lambda: roles.alive() and asyncio.run(_idle_workers(chain_url, wallets)) == 1,
            120,
            roles.logs,
        )
        roles.start("validator", "validator", "run", "--config", str(configs["validator"]))
        roles.start("gateway", "gateway", "run", "--config", str(configs["gateway"]))
        _until(
            "the validator's round passes the worker's challenge",
            lambda: roles.alive() and _passed_challenges(store) >= 1,
            180,
            roles.logs,
        )

        def gateway_up() -> bool:
            try:
                url = f"http://127.0.0.1:{gateway_port}/v1/health"
                return roles.alive() and httpx.get(url, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _until("the gateway answers", gateway_up, 120, roles.logs)
    finally:
        roles.stop()
    for role, config in configs.items():  # the ports are free again: every check can pass
        result = CliRunner().invoke(app, ["doctor", role, "--config", str(config)])
        assert result.exit_code == 0, f"{role}:\n{result.output}"
        lines = result.output.splitlines()
        assert not [line for line in lines if line.startswith("fail")], result.output
        oks = {line.split(":")[0].split(maxsplit=2)[-1] for line in lines if line.startswith("ok")}
        assert EXPECTED_OK[role] <= oks, f"{role}:\n{result.output}"
