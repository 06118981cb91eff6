"""A real devnet chain for tests that need one outside the network fixture: `byteleap chain
serve` as a process, and the registrations a host's roles need on it."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

import bittensor as bt
import httpx

from byteleap.chain.local.client import LocalChain
from byteleap.net.tls import load_or_create_identity


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_chain(root: Path, port: int) -> subprocess.Popen[bytes]:
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


async def register_host(
    url: str, miner: bt.Wallet, validator: bt.Wallet, axon: int, tls: Path
) -> None:
    """The miner registered with its axon and TLS key published; the validator registered and
    staked until it holds a permit."""
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
