"""A real small network on loopback: chain, one miner, three CPU workers, as processes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bittensor as bt
import pytest

from byteleap.chain.local.client import LocalChain
from byteleap.chain.port import NeuronInfo
from byteleap.keys import ensure_wallet
from byteleap.net.messages import WorkerState, WorkerView
from byteleap.net.miner_client import MinerClient

BYTELEAP = [sys.executable, "-m", "byteleap.cli"]


def _port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Network:
    root: Path
    chain_url: str
    miner_port: int
    miner_config: Path
    miner_metrics_port: int
    validator: bt.Wallet
    outsider: bt.Wallet
    miner_wallet: bt.Wallet
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = (self.root / f"{name}.log").open("ab")
        process = subprocess.Popen(
            [*BYTELEAP, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "BYTELEAP_LOG_LEVEL": "INFO"},
        )
        self.processes[name] = process
        return process

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name)
        if process.poll() is None:
            os.killpg(process.pid, sig)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def start_miner(self) -> None:
        self.start("miner", "miner", "run", "--config", str(self.miner_config))

    def new_token(self) -> str:
        result = subprocess.run(
            [*BYTELEAP, "miner", "token", "new", "--config", str(self.miner_config)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        # Say why: a failure here once showed only its exit status.
        assert result.returncode == 0, f"miner token new failed:\n{result.stderr[-3000:]}"
        return result.stdout.strip()

    def start_worker(self, name: str, token: str | None, behaviour: str = "honest") -> None:
        args = [
            "worker",
            "--miner",
            f"wss://127.0.0.1:{self.miner_port}/v1/worker",
            "--home",
            str(self.root / name),
            "--behaviour",
            behaviour,
        ]
        if token is not None:
            args += ["--token", token]
        self.start(name, *args)

    def miner_cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*BYTELEAP, "miner", *args, "--config", str(self.miner_config)],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "COLUMNS": "200"},
        )


def _write_configs(
    root: Path, chain_port: int, miner_port: int, metrics_port: int, wallets: Path
) -> Path:
    (root / "chain.toml").write_text(
        f'[chain]\nport = {chain_port}\ndb_path = "{root / "chain.db"}"\n'
        "block_time_s = 0.1\ntempo = 10\nmax_validators = 1\nweights_rate_limit = 0\n"
    )
    miner_config = root / "miner.toml"
    miner_config.write_text(
        f'[miner]\nport = {miner_port}\nhome = "{root / "miner-home"}"\n'
        "heartbeat_s = 0.5\nmissed_heartbeats = 3\npermit_cache_s = 0.5\n"
        f"rate_per_s = 1000\nrate_burst = 1000\nmetrics_port = {metrics_port}\n"
        f'[miner.wallet]\nname = "miner"\nhotkey = "default"\npath = "{wallets}"\n'
        f'[miner.chain]\nurl = "http://127.0.0.1:{chain_port}"\n'
    )
    return miner_config


@pytest.fixture(scope="module")
def network(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Network]:
    root = tmp_path_factory.mktemp("net")
    wallets = root / "wallets"
    chain_port, miner_port, metrics_port = _port(), _port(), _port()
    net = Network(
        root=root,
        chain_url=f"http://127.0.0.1:{chain_port}",
        miner_port=miner_port,
        miner_config=_write_configs(root, chain_port, miner_port, metrics_port, wallets),
        miner_metrics_port=metrics_port,
        validator=ensure_wallet("validator", path=wallets),
        outsider=ensure_wallet("outsider", path=wallets),
        miner_wallet=ensure_wallet("miner", path=wallets),
    )
    try:
        net.start("chain", "chain", "serve", "--config", str(root / "chain.toml"))
        asyncio.run(_register(net))
        net.start_miner()
        yield net
    finally:
        for name in list(net.processes):
            net.stop(name)


async def _register(net: Network) -> None:
    async with LocalChain(net.chain_url, timeout_s=5) as chain:
        deadline = time.monotonic() + 30
        while True:
            try:
                await chain.current_block()
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        for wallet in (net.validator, net.outsider):
            await chain.register(wallet)
        await chain.add_stake(net.validator, 1000.0)
        validator = net.validator.hotkey.ss58_address
        while True:
            neuron = (await chain.metagraph()).by_hotkey(validator)
            if neuron is not None and neuron.validator_permit:
                break
            await asyncio.sleep(0.1)


async def miner_neuron(network: Any) -> NeuronInfo:
    async with LocalChain(network.chain_url, timeout_s=5) as chain:
        deadline = time.monotonic() + 60
        while True:
            neuron = (await chain.metagraph()).by_hotkey(network.miner_wallet.hotkey.ss58_address)
            if neuron is not None and neuron.certificate:
                return neuron
            assert time.monotonic() < deadline, "miner never published its axon:\n" + network.log(
                "miner"
            )
            await asyncio.sleep(0.2)


async def wait_for_workers(
    client: MinerClient, count: int, state: WorkerState = WorkerState.IDLE
) -> list[WorkerView]:
    deadline = time.monotonic() + 60
    while True:
        listed = (await client.workers()).workers
        ready = [w for w in listed if w.state is state]
        if len(ready) >= count:
            return ready
        assert time.monotonic() < deadline, f"workers: {[(w.worker_id, w.state) for w in listed]}"
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def workers(network: Any) -> dict[str, str]:
    """Enroll three workers (one of which hangs on challenges); name -> worker id."""
    for name, behaviour in (("w1", "honest"), ("w2", "honest"), ("w3", "hang")):
        network.start_worker(name, network.new_token(), behaviour)

    async def enrolled() -> dict[str, str]:
        neuron = await miner_neuron(network)
        async with MinerClient(network.validator, neuron) as client:
            await wait_for_workers(client, 3)
        return {
            name: json.loads((network.root / name / "worker_identity.json").read_text())[
                "worker_id"
            ]
            for name in ("w1", "w2", "w3")
        }

    return asyncio.run(enrolled())
