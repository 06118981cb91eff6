"""Hostile uploads cannot grow the gateway: 40 clients without a key, trickling bodies they
declared at the limit or pushing whole bodies as fast as they can, leave the real gateway
process (``byteleap gateway run``, its memory read with psutil) within 50 MB of where it
started, at the peak and after. Each is answered 401 right after its headers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import pytest

from byteleap.keys import ensure_wallet

pytestmark = [pytest.mark.adversarial, pytest.mark.slow]

log = logging.getLogger(__name__)

CLIENTS = 40
BODY = 8 << 20  # the gateway's default body limit: every declared length is allowed
CHUNK = 64 << 10
ALLOWED_GROWTH = 50 << 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Gateway:
    process: psutil.Process
    host: str
    port: int

    def rss(self) -> int:
        return int(self.process.memory_info().rss)


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[Gateway]:
    ensure_wallet("gateway", path=tmp_path / "wallets")
    port = _free_port()
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nport = {port}\ngrpc_port = {_free_port()}\nhome = "{tmp_path / "home"}"\n'
        f'[gateway.store]\nurl = "sqlite+aiosqlite:///{tmp_path / "gateway.db"}"\n'
        f'[gateway.wallet]\nname = "gateway"\npath = "{tmp_path / "wallets"}"\n'
        # no chain runs here: the customer API serves without one
        f'[gateway.chain]\nurl = "http://127.0.0.1:{_free_port()}"\n'
    )
    output = (tmp_path / "gateway.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "byteleap.cli", "gateway", "run", "--config", str(config)],
        stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (tmp_path / "gateway.log").read_text()
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).is_success:
                    break
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.2)
        yield Gateway(psutil.Process(process.pid), "127.0.0.1", port)
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()


def _head(content_length: int) -> bytes:
    return (
        "POST /v1/jobs HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
        f"Content-Length: {content_length}\r\n\r\n"
    ).encode()


@dataclass
class Outcome:
    status: bytes  # the answer's status line ("" if none came)
    body_sent: int  # body bytes the client got out before the answer
    seconds: float


async def _client(gw: Gateway, pause_s: float, seconds: float) -> Outcome:
    """Declare a ``BODY``-byte body without a key and send it ``CHUNK`` by ``CHUNK`` every
    ``pause_s`` (0: as fast as the socket takes it), for at most ``seconds``, until the
    gateway answers or cuts the connection."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection(gw.host, gw.port)
    sent = 0
    answer = b""
    chunk = b"x" * CHUNK
    try:
        writer.write(_head(BODY))
        await writer.drain()
        while sent < BODY and time.monotonic() - started < seconds:
            with contextlib.suppress(TimeoutError):
                answer = await asyncio.wait_for(reader.read(4096), pause_s or 0.001)
                break
            writer.write(chunk)
            await writer.drain()
            sent += CHUNK
        if not answer:
            answer = await asyncio.wait_for(reader.read(4096), 30)
    except (ConnectionError, TimeoutError):
        # cut off: pushed bytes the gateway closed on reset the connection, and the answer
        # may go with it; what counts is what the gateway kept
        with contextlib.suppress(ConnectionError, TimeoutError):
            answer = answer or await asyncio.wait_for(reader.read(4096), 1)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return Outcome(answer.split(b"\r\n", 1)[0], sent, time.monotonic() - started)


async def _attack(gw: Gateway, pause_s: float, seconds: float) -> tuple[list[Outcome], int]:
    """``CLIENTS`` clients at once; (their outcomes, the gateway's peak RSS meanwhile)."""
    peak = gw.rss()
    clients = asyncio.gather(*(_client(gw, pause_s, seconds) for _ in range(CLIENTS)))
    while not clients.done():
        peak = max(peak, gw.rss())
        await asyncio.wait({clients}, timeout=0.05)
    return clients.result(), max(peak, gw.rss())


async def test_keyless_uploads_leave_the_gateways_memory_where_it_was(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=f"http://{gateway.host}:{gateway.port}") as http:
        for _ in range(3):  # first-use allocations of the refusal's path are no growth
            refused = await http.post("/v1/jobs", json={"command": ["x"]})
            assert refused.status_code == 401
    await asyncio.sleep(0.5)
    before = gateway.rss()
    slow, slow_peak = await _attack(gateway, pause_s=0.05, seconds=8.0)
    fast, fast_peak = await _attack(gateway, pause_s=0.0, seconds=8.0)
    await asyncio.sleep(1.0)
    after = gateway.rss()
    mib = 1 << 20
    log.warning(
        "gateway RSS: before %.1f MiB, peak %.1f MiB (trickling) / %.1f MiB (pushing), "
        "after %.1f MiB",
        before / mib, slow_peak / mib, fast_peak / mib, after / mib,
    )  # fmt: skip
    for outcome in slow:
        assert outcome.status.startswith(b"HTTP/1.1 401 "), outcome
        assert outcome.body_sent <= BODY // 16, outcome  # answered after the headers
    for outcome in fast:
        assert outcome.status in (b"", b"HTTP/1.1 401 Unauthorized"), outcome
    assert max(slow_peak, fast_peak) - before < ALLOWED_GROWTH, (before, slow_peak, fast_peak)
    assert after - before < ALLOWED_GROWTH, (before, after)
