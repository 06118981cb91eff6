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
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bittensor as bt
import pytest
from typer.testing import CliRunner, Result

from byteleap.cli import app
from byteleap.keys import ensure_wallet
from byteleap.store import upgrade
from byteleap.store.revisions import head_revision
from local_chain import free_port, register_host, start_chain


@dataclass
class Host:
    config: Path
    chain_url: str
    miner_port: int
    store_db: Path
    miner: bt.Wallet
    validator: bt.Wallet
    wallets: Path


@pytest.fixture(scope="module")
def host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Host]:
    root = tmp_path_factory.mktemp("doctor")
    wallets = root / "wallets"
    chain_port, miner_port = free_port(), free_port()
    chain_url = f"http://127.0.0.1:{chain_port}"
    miner, validator = ensure_wallet("m", path=wallets), ensure_wallet("v", path=wallets)
    store_db = root / "validator.db"
    asyncio.run(upgrade(f"sqlite+aiosqlite:///{store_db}"))
    chain = start_chain(root, chain_port)
    try:
        asyncio.run(register_host(chain_url, miner, validator, miner_port, root / "tls"))
        config = root / "all.toml"
        chain_table = f'url = "{chain_url}"\n'
        store_table = f'url = "sqlite+aiosqlite:///{store_db}"\n'
        config.write_text(
            f'[miner]\nhome = "{root / "miner"}"\nport = {miner_port}\n'
            f"metrics_port = {free_port()}\n"
            f'[miner.wallet]\nname = "m"\npath = "{wallets}"\n[miner.chain]\n{chain_table}'
            f'[worker]\nhome = "{root / "worker"}"\ngpus = []\nexecutor = "container"\n'
            f'[validator]\nhome = "{root / "validator"}"\nmetrics_port = {free_port()}\n'
            f'[validator.wallet]\nname = "v"\npath = "{wallets}"\n'
            f"[validator.chain]\n{chain_table}[validator.store]\n{store_table}"
            f'[gateway]\nhome = "{root / "gateway"}"\nport = {free_port()}\n'
            f"grpc_port = {free_port()}\n"
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
