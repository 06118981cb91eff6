"""A small real network for private-lease tests: a chain and two miners as processes in the
root namespace, each worker a process in its own network namespace ("host") on the
underlay bridge, which the root namespace joins too (``ROOT_IP``), so workers reach their
miners and each other over a real L2 segment, and leases' WireGuard links run where their
worker runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import bittensor as bt

from byteleap.chain.local.client import LocalChain
from byteleap.chain.port import NeuronInfo
from byteleap.keys import ensure_wallet
from byteleap.net.messages import WorkerState
from byteleap.net.miner_client import MinerClient
from net.wireguard.netns_harness import UNDERLAY_NET, Underlay

BYTELEAP = [sys.executable, "-m", "byteleap.cli"]
ROOT_IP = f"{UNDERLAY_NET}.1"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def join_root(underlay: Underlay) -> str:
    """Put the root namespace on the underlay's bridge at `ROOT_IP`; the link's name (it goes
    away with the bridge's namespace)."""
    here, there = f"{underlay.prefix}r", f"{underlay.prefix}rb"
    run = [["link", "add", here, "type", "veth", "peer", "name", there],
           ["link", "set", there, "netns", underlay.bridge_ns],
           ["-n", underlay.bridge_ns, "link", "set", there, "master", "br0", "up"],
           ["address", "add", f"{ROOT_IP}/24", "dev", here],
           ["link", "set", here, "up"]]  # fmt: skip
    for argv in run:
        subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)
    return here


@dataclass
class Miner:
    name: str
    wallet: bt.Wallet
    port: int
    config: Path

    @property
    def hotkey(self) -> str:
        return str(self.wallet.hotkey.ss58_address)


@dataclass
class PrivateNet:
    root: Path
    underlay: Underlay
    chain_url: str
    gateway: bt.Wallet
    miners: dict[str, Miner] = field(default_factory=dict)
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    worker_miner: dict[str, str] = field(default_factory=dict)  # worker -> miner name

    def start(self, name: str, *args: str, netns: str | None = None) -> None:
        prefix = ["ip", "netns", "exec", netns] if netns else []
        with (self.root / f"{name}.log").open("ab") as log:
            self.processes[name] = subprocess.Popen(
                [*prefix, *BYTELEAP, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env={**os.environ, "BYTELEAP_LOG_LEVEL": "INFO"},
            )

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def add_miner(self, name: str) -> Miner:
        port = free_port(ROOT_IP)
        wallet = ensure_wallet(name, path=self.root / "wallets")
        config = self.root / f"{name}.toml"
        config.write_text(
            f'[miner]\nhost = "{ROOT_IP}"\nport = {port}\nhome = "{self.root / name}"\n'
            "heartbeat_s = 0.5\nmissed_heartbeats = 6\npermit_cache_s = 0.5\n"
            "rate_per_s = 1000\nrate_burst = 1000\n"
            f'[miner.wallet]\nname = "{name}"\nhotkey = "default"\n'
            f'path = "{self.root / "wallets"}"\n'
            f'[miner.chain]\nurl = "{self.chain_url}"\n'
        )
        miner = self.miners[name] = Miner(name, wallet, port, config)
        self.start(name, "miner", "run", "--config", str(config))
        return miner

    def add_worker(self, name: str, miner: Miner) -> None:
        """A worker on its own host (namespace ``name``), enrolled with ``miner``."""
        self.underlay.add_host(name)
        token = subprocess.run(
            [*BYTELEAP, "miner", "token", "new", "--config", str(miner.config)],
            capture_output=True, text=True, check=True, timeout=60,
        ).stdout.strip()  # fmt: skip
        url = f"wss://{ROOT_IP}:{miner.port}/v1/worker"
        home = self.root / name
        self.worker_miner[name] = miner.name
        self.start(name, "worker", "--miner", url, "--home", str(home), "--token", token,
                   netns=self.underlay.ns(name))  # fmt: skip

    def worker_id(self, name: str) -> str:
        identity = json.loads((self.root / name / "worker_identity.json").read_text())
        return str(identity["worker_id"])

    async def neuron(self, miner: Miner) -> NeuronInfo:
        async with LocalChain(self.chain_url, timeout_s=5) as chain:
            deadline = time.monotonic() + 60
            while True:
                found = (await chain.metagraph()).by_hotkey(miner.hotkey)
                if found is not None and found.certificate:
                    return found
                assert time.monotonic() < deadline, self.log(miner.name)
                await asyncio.sleep(0.2)

    async def wait_idle(self, *workers: str) -> None:
        deadline = time.monotonic() + 60
        for name in workers:
            miner = self.miners[self.worker_miner[name]]
            async with MinerClient(self.gateway, await self.neuron(miner)) as client:
                while True:
                    states = {w.worker_id: w.state for w in (await client.workers()).workers}
                    path = self.root / name / "worker_identity.json"
                    if path.exists() and states.get(self.worker_id(name)) is WorkerState.IDLE:
                        break
                    assert time.monotonic() < deadline, f"{name}: {states}\n{self.log(name)}"
                    await asyncio.sleep(0.2)


async def start_chain(net: PrivateNet) -> None:
    """The chain, with the gateway's hotkey registered and holding a validator permit."""
    port = int(net.chain_url.rsplit(":", 1)[1])
    config = net.root / "chain.toml"
    config.write_text(
        f'[chain]\nport = {port}\ndb_path = "{net.root / "chain.db"}"\n'
        "block_time_s = 0.1\ntempo = 10\nmax_validators = 1\nweights_rate_limit = 0\n"
    )
    net.start("chain", "chain", "serve", "--config", str(config))
    async with LocalChain(net.chain_url, timeout_s=5) as chain:
        deadline = time.monotonic() + 30
        while True:
            try:
                await chain.current_block()
                break
            except Exception:
                assert time.monotonic() < deadline, net.log("chain")
                await asyncio.sleep(0.1)
        await chain.register(net.gateway)
        await chain.add_stake(net.gateway, 1000.0)
        while True:
            neuron = (await chain.metagraph()).by_hotkey(net.gateway.hotkey.ss58_address)
            if neuron is not None and neuron.validator_permit:
                return
            await asyncio.sleep(0.1)
