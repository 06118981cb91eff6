"""`byteleap doctor` passes for every role on configs that are valid on this host: a real
devnet chain (`byteleap chain serve`) where the miner is registered with its axon published
and the validator (whose key the gateway signs with) holds a permit, a migrated SQLite store,
free ports. The worker is a CPU-only config, so its GPU checks skip with their reason (this
host has no GPU; on one with GPUs they would too, as the config names none)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bittensor as bt
import httpx
import pytest
from typer.testing import CliRunner, Result

from byteleap.chain.local.client import LocalChain
from byteleap.cli import app
from byteleap.keys import ensure_wallet
from byteleap.net.tls import load_or_create_identity
from byteleap.store import upgrade
from byteleap.store.revisions import head_revision


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Host:
    config: Path
    chain_url: str
    miner_port: int
    store_db: Path
    miner: bt.Wallet
    validator: bt.Wallet
    wallets: Path


def _start_chain(root: Path, port: int) -> subprocess.Popen[bytes]:
    (root / "chain.toml").write_text(
        '[chain]\nblock_time_s = 0.1\ntempo = 5\nmax_validators = 2\nlog_level = "WARNING"\n'
    )
    log = (root / "chain.log").open("ab")
    process = subprocess.Popen(
        [
            sys.executable, "-m", "byteleap.cli", "chain", "serve",
            "--config", str(root / "chain.toml"), "--port", str(port),
            "--db", str(root / "chain.db"),
        ],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, cwd=root, start_new_session=True,
    )  # fmt: skip
    log.close()
    deadline = time.monotonic() + 60
    while True:
        assert process.poll() is None, (root / "chain.log").read_text()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/info", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "chain serve did not come up in 60 s"
        time.sleep(0.1)


async def _register(url: str, miner: bt.Wallet, validator: bt.Wallet, axon: int, tls: Path) -> None:
    async with LocalChain(url, timeout_s=10) as chain:
        await chain.register(miner)
        identity = load_or_create_identity(tls)
        await chain.serve_axon(miner, "127.0.0.1", axon, certificate=identity.public_key)
        await chain.register(validator)
        await chain.add_stake(validator, 1000.0)
        deadline = time.monotonic() + 60
        while True:  # the permit comes with the next epoch
            neuron = (await chain.metagraph()).by_hotkey(validator.hotkey.ss58_address)
            if neuron is not None and neuron.validator_permit:
                return
            assert time.monotonic() < deadline, "the validator never got its permit"
            await asyncio.sleep(0.1)


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("doctor")
    wallets = root / "wallets"
    chain_port, miner_port = _port(), _port()
    chain_url = f"http://127.0.0.1:{chain_port}"
    miner, validator = ensure_wallet("m", path=wallets), ensure_wallet("v", path=wallets)
    store_db = root / "validator.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{store_db}"))
    chain = _start_chain(root, chain_port)
    try:
        asyncio.run(_register(chain_url, miner, validator, miner_port, root / "tls"))
        config = root / "all.toml"
        chain_table = f'url = "{chain_url}"\n'
        store_table = f'url = "sqlite+aiosqlite:///{store_db}"\n'
        config.write_text(
            f'[miner]\nhome = "{root / "miner"}"\nport = {miner_port}\nmetrics_port = {_port()}\n'
            f'[miner.wallet]\nname = "m"\npath = "{wallets}"\n[miner.chain]\n{chain_table}'
            f'[worker]\nhome = "{root / "worker"}"\ngpus = []\nexecutor = "container"\n'
            f'[validator]\nhome = "{root / "validator"}"\nmetrics_port = {_port()}\n'
            f'[validator.wallet]\nname = "v"\npath = "{wallets}"\n'
            f"[validator.chain]\n{chain_table}[validator.store]\n{store_table}"
            f'[gateway]\nhome = "{root / "gateway"}"\nport = {_port()}\ngrpc_port = {_port()}\n'
            f'[gateway.wallet]\nname = "v"\npath = "{wallets}"\n'
            f"[gateway.chain]\n{chain_table}[gateway.store]\n{store_table}"
        )
        yield Host(config, chain_url, miner_port, store_db, miner, validator, wallets)
    finally:
        if chain.poll() is None:
            os.killpg(chain.pid, signal.SIGTERM)
            try:
                chain.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(chain.pid, signal.SIGKILL)
                chain.wait()


def doctor(*args: str) -> Result:
    return CliRunner().invoke(app, ["doctor", *args])


def test_every_role_in_the_config_passes(host: Host) -> None:
    result = doctor("--config", str(host.config))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert not [line for line in lines if line.startswith("fail")], result.output
    miner, validator = host.miner.hotkey.ss58_address, host.validator.hotkey.ss58_address
    for expected in (
        f"ok    miner     port miner: 127.0.0.1:{host.miner_port} is free",
        f"ok    miner     wallet: hotkey m/default under {host.wallets}: {miner}",
        f"ok    miner     axon: published at 127.0.0.1:{host.miner_port} with its TLS key",
        "skip  worker    nvml: a CPU-only worker (gpus = [])",
        "skip  worker    torch: a CPU-only worker (gpus = [])",
        "skip  worker    triton: a CPU-only worker (gpus = [])",
        "skip  worker    cdi: a CPU-only worker (gpus = []): containers get no GPUs",
        f"ok    validator wallet: hotkey v/default under {host.wallets}: {validator}",
        f"ok    validator store schema: sqlite file {host.store_db} at head {head_revision()}",
        f"ok    gateway   wallet: hotkey v/default under {host.wallets}: {validator}",
        "ok    gateway   tls: plain HTTP on 127.0.0.1",
    ):
        assert expected in lines, f"{expected!r} not in:\n{result.output}"
    for role in ("miner", "validator", "gateway"):
        registered = next(line for line in lines if line.startswith(f"ok    {role:<9} registered"))
        assert registered.endswith("on netuid 1"), registered
    for role in ("validator", "gateway"):
        assert any(line.startswith(f"ok    {role:<9} permit: ") for line in lines), result.output


@pytest.mark.parametrize("role", ["miner", "worker", "validator", "gateway"])
def test_each_role_passes_alone_as_json(host: Host, role: str) -> None:
    result = doctor(role, "--config", str(host.config), "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and report["roles"] == [role]
    assert {c["role"] for c in report["checks"]} == {role}
    assert [c for c in report["checks"] if c["status"] == "fail"] == []
    wanted = {
        "miner": {"port miner", "wallet", "chain", "registered", "axon", "clock", "disk"},
        "worker": {"nvml", "torch", "triton", "cdi", "port metrics", "clock", "disk"},
        "validator": {"wallet", "chain", "registered", "permit", "store", "store schema"},
        "gateway": {"tls", "port rest", "port grpc", "registered", "permit", "store schema"},
    }[role]
    assert wanted <= {c["check"] for c in report["checks"]}
