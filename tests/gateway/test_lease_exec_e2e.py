"""Lease exec sessions through the gateway's WebSocket, the miner and the leased worker, all
real: output, stdin, exit codes, a shell on a terminal, isolation, and the lease's end."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
import uvicorn

from byteleap.gateway.core import GatewayService, create_tenant_with_key, revoke_key
from byteleap.gateway.rest import create_rest_app
from byteleap.protocol.api import LeaseSpec
from byteleap.protocol.exec_frames import ExecExited, ExecOutput
from byteleap.sdk import AsyncClient, Conflict, NotFound, Unauthorized
from byteleap.sdk.forward import forward_port
from byteleap.store import Store
from gateway.gateway_harness import dispatching, lease_desk, miner_pool, network_settings

pytestmark = pytest.mark.slow

PROGRAM = """
import os, sys
print(os.getcwd())
print(sorted(k for k in os.environ if k.startswith("BYTELEAP")))
print(sys.stdin.read().upper())
print("to stderr", file=sys.stderr)
sys.exit(3)
"""


@dataclass
class Gateway:
    service: GatewayService
    url: str


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


@pytest.fixture
async def gateway(network: Any, workers: dict[str, str], store: Store) -> AsyncIterator[Gateway]:
    settings = network_settings(network)
    async with miner_pool(network, settings) as pool:
        desk = lease_desk(network, store, pool, settings, bill_period_s=60.0)
        service = GatewayService(store, pool, settings, leasing=desk)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_rest_app(service), host="127.0.0.1", port=port, log_level="error")
        )
        serving = asyncio.create_task(server.serve())
        async with dispatching(service):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
                await asyncio.sleep(0.02)
            try:
                yield Gateway(service, f"http://127.0.0.1:{port}")
            finally:
                server.should_exit = True
                await asyncio.gather(serving, return_exceptions=True)


async def _tenant(gateway: Gateway, name: str) -> str:
    return await create_tenant_with_key(gateway.service.store, name, balance=10.0)


async def test_a_command_runs_in_the_leases_environment(gateway: Gateway) -> None:
    key = await _tenant(gateway, "renter")
    async with AsyncClient(gateway.url, key) as client:
        lease = await client.create_lease({"duration_s": 120})
        result = await client.exec(lease.id, [sys.executable, "-c", PROGRAM], b"hello lease")
        assert result.exit_code == 3, result
        cwd, env_keys, shouted, _ = result.stdout.decode().split("\n", 3)
        assert "/leases/" in cwd  # the lease's own work dir on the worker
        assert env_keys == "[]"  # nothing of the worker's own environment
        assert shouted == "HELLO LEASE"
        assert result.stderr == b"to stderr\n"
        # Files persist in the lease's dir between sessions.
        await client.exec(lease.id, ["sh", "-c", "echo kept > note.txt"])
        again = await client.exec(lease.id, ["cat", "note.txt"])
        assert (again.exit_code, again.stdout) == (0, b"kept\n")
        await client.release_lease(lease.id)
        with pytest.raises(Conflict):
            await client.open_exec(lease.id, ["true"])


async def test_an_interactive_shell_on_a_terminal(gateway: Gateway) -> None:
    async with AsyncClient(gateway.url, await _tenant(gateway, "sheller")) as client:
        lease = await client.create_lease({"duration_s": 120})
        async with await client.open_exec(lease.id, ["sh", "-i"], tty=True) as session:
            await session.send(b"echo $((6*7))\nexit 5\n")
            result = await asyncio.wait_for(session.collect(), 30)
        assert result.exit_code == 5 and b"42" in result.stdout, result
        # The customer's terminal size reaches the worker's terminal through gateway and miner.
        opening = client.open_exec(lease.id, ["stty", "size"], tty=True, size=(37, 121))
        async with await opening as session:
            sized = await asyncio.wait_for(session.collect(), 30)
        assert sized.exit_code == 0 and sized.stdout.split() == [b"37", b"121"], sized
        # A later resize reaches it too: the program gets SIGWINCH and sees the new size.
        trap = 'trap "stty size; exit 0" WINCH; echo ready; while :; do sleep 0.05; done'
        opening = client.open_exec(lease.id, ["sh", "-c", trap], tty=True, size=(37, 121))
        async with await opening as session:
            seen = b""
            while b"ready" not in seen:
                frame = await asyncio.wait_for(session.recv(), 30)
                assert isinstance(frame, ExecOutput), frame
                seen += frame.data
            await session.resize(45, 99)
            resized = await asyncio.wait_for(session.collect(), 30)
        assert resized.exit_code == 0 and resized.stdout.split() == [b"45", b"99"], resized
        await client.release_lease(lease.id)


@pytest.mark.adversarial
async def test_only_the_leases_tenant_with_a_key_gets_a_session(gateway: Gateway) -> None:
    owner = AsyncClient(gateway.url, await _tenant(gateway, "owner"))
    other = AsyncClient(gateway.url, await _tenant(gateway, "other"))
    nobody = AsyncClient(gateway.url, "blk_wrong")
    async with owner, other, nobody:
        lease = await owner.create_lease({"duration_s": 120})
        with pytest.raises(NotFound):
            await other.open_exec(lease.id, ["true"])
        with pytest.raises(NotFound):
            await owner.open_exec("lease_" + "0" * 24, ["true"])
        with pytest.raises(Unauthorized):
            await nobody.open_exec(lease.id, ["true"])
        await owner.release_lease(lease.id)


async def test_the_end_of_the_lease_ends_the_session(gateway: Gateway) -> None:
    async with AsyncClient(gateway.url, await _tenant(gateway, "ender")) as client:
        lease = await client.create_lease(LeaseSpec(duration_s=120))
        session = await client.open_exec(lease.id, ["sleep", "300"])
        async with session:
            await asyncio.sleep(0.5)
            started = time.monotonic()
            await client.release_lease(lease.id)
            frame = await asyncio.wait_for(session.recv(), 15)
        assert isinstance(frame, ExecExited) and frame.exit_code is None
        assert "lease ended" in frame.reason and time.monotonic() - started < 10


async def test_a_session_the_caller_drops_stops_its_program(gateway: Gateway) -> None:
    async with AsyncClient(gateway.url, await _tenant(gateway, "dropper")) as client:
        lease = await client.create_lease({"duration_s": 120})
        marker = "byteleap-exec-drop-test"
        session = await client.open_exec(lease.id, ["sh", "-c", f"exec -a {marker} sleep 300"])
        await asyncio.sleep(1.0)
        await session.close()
        deadline = time.monotonic() + 15
        while True:
            check = await client.exec(lease.id, ["pgrep", "-f", marker])
            if check.exit_code == 1:  # no such process any more
                break
            assert time.monotonic() < deadline, check
            await asyncio.sleep(0.5)
        with contextlib.suppress(Exception):
            await client.release_lease(lease.id)


async def test_the_cli_runs_a_command_with_stdin_and_exits_with_its_status(
    gateway: Gateway,
) -> None:
    key = await _tenant(gateway, "cli")
    async with AsyncClient(gateway.url, key) as client:
        lease = await client.create_lease({"duration_s": 120})
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "byteleap.cli", "leases", "exec", lease.id,
            "--gateway", gateway.url, "--", "sh", "-c", "tr a-z A-Z; echo oops >&2; exit 7",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "BYTELEAP_API_KEY": key},
        )  # fmt: skip
        out, err = await asyncio.wait_for(process.communicate(b"piped in\n"), 60)
        assert (process.returncode, out) == (7, b"PIPED IN\n"), err
        assert b"oops" in err
        await client.release_lease(lease.id)


async def test_fast_output_read_slowly_arrives_whole(gateway: Gateway) -> None:
    """The program outruns the reader many times over: it waits (backpressure from the
    customer's socket through the gateway, the miner and the worker), the session goes on."""
    size = 50_000_000
    async with AsyncClient(gateway.url, await _tenant(gateway, "slow-reader")) as client:
        lease = await client.create_lease({"duration_s": 300})
        command = ["sh", "-c", f"yes | head -c {size}"]
        async with await client.open_exec(lease.id, command) as session:
            received, frames = 0, 0
            while True:
                frame = await asyncio.wait_for(session.recv(), 60)
                if isinstance(frame, ExecExited):
                    break
                assert frame.stream == "stdout" and frame.data.startswith((b"y\n", b"\ny"))
                received += len(frame.data)
                frames += 1
                if frames % 100 == 0:
                    await asyncio.sleep(0.5)  # far longer than the program needs to fill it all
        assert (frame.exit_code, frame.reason, received) == (0, "", size), frame
        await client.release_lease(lease.id)


@pytest.mark.adversarial
async def test_revoking_the_key_ends_the_session(gateway: Gateway) -> None:
    key = await _tenant(gateway, "revoked")
    async with AsyncClient(gateway.url, key) as client:
        lease = await client.create_lease({"duration_s": 120})
        async with await client.open_exec(lease.id, ["sleep", "300"]) as session:
            await asyncio.sleep(0.5)
            assert await revoke_key(gateway.service.store, key)
            revoked_at = time.monotonic()
            frame = await asyncio.wait_for(session.recv(), 15)
            took = time.monotonic() - revoked_at
        assert isinstance(frame, ExecExited) and frame.exit_code is None
        assert "revoked" in frame.reason and took < 5, (frame, took)
        with pytest.raises(Unauthorized):
            await client.open_exec(lease.id, ["true"])


async def _echo_server() -> asyncio.Server:
    """A TCP service on this host, which is also the worker's: what each connection sends
    comes back, then the connection ends."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(echo, "127.0.0.1", 0)


async def _round_trip(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    writer.write_eof()  # the end of our side is passed on: the echo then ends its side
    try:
        return await asyncio.wait_for(reader.read(), 60)
    finally:
        writer.close()


async def test_a_local_port_is_forwarded_into_the_lease(gateway: Gateway) -> None:
    echo = await _echo_server()
    echo_port = echo.sockets[0].getsockname()[1]
    async with AsyncClient(gateway.url, await _tenant(gateway, "forwarder")) as client:
        lease = await client.create_lease({"duration_s": 120})
        forward = await forward_port(client, lease.id, "127.0.0.1", echo_port)
        port = forward.sockets[0].getsockname()[1]
        payload = os.urandom(1 << 20)  # binary, several exec frames each way
        both = await asyncio.gather(_round_trip(port, payload), _round_trip(port, b"second"))
        assert both == [payload, b"second"]
        # A remote that refuses: the local connection just ends, and the forward goes on.
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))
            closed_port = unused.getsockname()[1]
        refused = await forward_port(client, lease.id, "127.0.0.1", closed_port)
        assert await _round_trip(refused.sockets[0].getsockname()[1], b"lost") == b""
        assert await _round_trip(port, b"still") == b"still"
        for server in (forward, refused):
            server.close()
        await client.release_lease(lease.id)
    echo.close()


async def test_leases_forward_carries_a_port_until_ctrl_c(gateway: Gateway) -> None:
    echo = await _echo_server()
    echo_port = echo.sockets[0].getsockname()[1]
    key = await _tenant(gateway, "cli-forwarder")
    async with AsyncClient(gateway.url, key) as client:
        lease = await client.create_lease({"duration_s": 120})
    command = ["leases", "forward", lease.id, f"0:127.0.0.1:{echo_port}"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "byteleap.cli", *command, "--gateway", gateway.url,
        "--api-key", key, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = (await asyncio.wait_for(process.stderr.readline(), 60)).decode()
        assert line.startswith("forwarding 127.0.0.1:"), line
        port = int(line.split()[1].rsplit(":", 1)[1])
        assert await _round_trip(port, b"through the cli") == b"through the cli"
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        echo.close()


async def test_leases_exec_ends_with_its_program_though_stdin_stays_open(gateway: Gateway) -> None:
    """`byteleap leases exec` from a terminal where nothing is typed: the CLI exits when the
    program does, not at the next keystroke (a read of stdin left pending must not hold it)."""
    key = await _tenant(gateway, "cli-exec")
    async with AsyncClient(gateway.url, key) as client:
        lease = await client.create_lease({"duration_s": 120})
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "byteleap.cli", "leases", "exec", lease.id, "--gateway",
        gateway.url, "--api-key", key, "--", "sh", "-c", "echo hi; exit 3",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        out = await asyncio.wait_for(process.stdout.read(), 60)
        assert await asyncio.wait_for(process.wait(), 30) == 3  # stdin still open, unwritten
        assert out == b"hi\n"
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
