"""SSH into a lease at the worker: asyncssh's client, over a socket pair, speaks to the worker's
in-process server through the exec session's real frames (ExecRunner, real programs)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncssh
import pytest

from byteleap.protocol.exec_frames import (
    MAX_EXEC_DATA,
    ExecAck,
    ExecExited,
    ExecFrameError,
    ExecOutput,
    ExecStart,
    ExecStdin,
    parse_exec_frame,
)
from byteleap.worker.access import ExecRunner

SESSION = "ab" * 16
Connection = asyncssh.SSHClientConnection
LEASE = "cd" * 16


class Bridge:
    """The miner's and the customer's part: frames to and from a local socket, with acks."""

    def __init__(self, runner: ExecRunner) -> None:
        self.runner = runner
        self.ours, self.client_end = socket.socketpair()
        self.ours.setblocking(False)
        self.exited: asyncio.Future[ExecExited] = asyncio.get_running_loop().create_future()

    async def send(self, text: str) -> None:
        frame = parse_exec_frame(text)
        assert frame.session == SESSION
        if isinstance(frame, ExecOutput):
            await asyncio.get_running_loop().sock_sendall(self.ours, frame.data)
            self.runner.ack(ExecAck(session=SESSION, frames=1))
        elif isinstance(frame, ExecExited) and not self.exited.done():
            self.exited.set_result(frame)
            with contextlib.suppress(OSError):
                self.ours.shutdown(socket.SHUT_WR)

    async def upstream(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            while data := await loop.sock_recv(self.ours, MAX_EXEC_DATA):
                self.runner.stdin(ExecStdin(session=SESSION, data=data))
        self.runner.stdin(ExecStdin(session=SESSION, eof=True))


@contextlib.asynccontextmanager
async def ssh_into(runner: ExecRunner) -> AsyncIterator[tuple[Connection, Bridge]]:
    bridge = Bridge(runner)
    start = ExecStart(session=SESSION, lease_id=LEASE, ssh=True)
    runner.begin(start)
    serving = asyncio.create_task(runner.start(start, bridge.send))
    carrying = asyncio.create_task(bridge.upstream())
    # Any user name and no credentials: the exec session is the authentication.
    conn = await asyncssh.connect(
        "lease",
        sock=bridge.client_end,
        username="whoever",
        known_hosts=None,
        client_keys=None,
        encoding=None,
    )
    try:
        yield conn, bridge
    finally:
        conn.close()
        await conn.wait_closed()
        await asyncio.wait_for(serving, 20)
        carrying.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await carrying
        bridge.ours.close()


async def test_a_command_runs_in_the_leases_dir_with_a_clean_environment(tmp_path: Path) -> None:
    runner = ExecRunner(tmp_path, gpu_env={"CUDA_VISIBLE_DEVICES": "1"})
    async with ssh_into(runner) as (conn, bridge):
        done = await conn.run("echo hi; pwd; echo $HOME $CUDA_VISIBLE_DEVICES; env | wc -l")
        assert done.exit_status == 0, done.stderr
        hi, cwd, home, count = _text(done.stdout).split("\n")[:4]
        lease_dir = str((tmp_path / "leases" / LEASE).resolve())
        assert (hi, cwd, home) == ("hi", lease_dir, f"{lease_dir} 1")
        assert int(count) < 10  # not the worker's environment
        failed = await conn.run("echo oops >&2; exit 3")
        assert (failed.exit_status, failed.stderr) == (3, b"oops\n")
        fed = await conn.run("tr a-z A-Z", input=b"piped\n")
        assert fed.stdout == b"PIPED\n"
    exited = await bridge.exited
    assert exited.exit_code == 0, exited


async def test_a_shell_on_a_terminal_follows_resizes(tmp_path: Path) -> None:
    async with ssh_into(ExecRunner(tmp_path)) as (conn, _):
        process = await conn.create_process(term_type="xterm", term_size=(101, 31))
        process.stdin.write(b"stty size; echo $TERM; echo mark-$((40+2))\n")
        seen = b""
        while b"mark-42" not in seen:  # the shell's answer, not its echo of the line
            seen += await asyncio.wait_for(process.stdout.read(4096), 20)
        assert b"31 101" in seen and b"xterm" in seen, seen
        process.change_terminal_size(77, 22)
        process.stdin.write(b"stty size; exit 4\n")
        rest = await asyncio.wait_for(process.stdout.read(), 20)
        await process.wait_closed()
        assert b"22 77" in rest and process.exit_status == 4, (rest, process.exit_status)


async def test_sftp_is_rooted_at_the_leases_dir(tmp_path: Path) -> None:
    (tmp_path / "leases").mkdir()
    (tmp_path / "leases" / "neighbour.txt").write_text("not yours")
    async with ssh_into(ExecRunner(tmp_path)) as (conn, _):
        async with conn.start_sftp_client() as sftp:
            await sftp.mkdir("made")
            async with sftp.open("made/file.bin", "wb") as out:
                await out.write(b"\x00\x01data")
            assert sorted(await sftp.listdir("/")) == [".", "..", "made"]
            # `..` stops at the lease's dir: the neighbour above it cannot be named.
            assert sorted(await sftp.listdir("/../..")) == [".", "..", "made"]
            for outside in ("../neighbour.txt", "/../neighbour.txt", "made/../../neighbour.txt"):
                with pytest.raises(asyncssh.SFTPNoSuchFile):
                    await sftp.stat(outside)
            assert await sftp.realpath("..") == "/"
    assert (tmp_path / "leases" / LEASE / "made" / "file.bin").read_bytes() == b"\x00\x01data"


async def test_the_host_key_is_the_leases_for_its_life_and_kept_outside_its_dir(
    tmp_path: Path,
) -> None:
    runner = ExecRunner(tmp_path)
    keys = []
    for _ in range(2):
        async with ssh_into(runner) as (conn, _):
            key = conn.get_server_host_key()
            assert key is not None
            keys.append(key.export_public_key())
    assert keys[0] == keys[1]
    assert (tmp_path / "lease-host-keys" / LEASE).stat().st_mode & 0o077 == 0
    assert not any(p.name == LEASE for p in (tmp_path / "leases" / LEASE).rglob("*"))


async def test_stopping_the_session_ends_the_connection_and_its_programs(tmp_path: Path) -> None:
    runner = ExecRunner(tmp_path)
    marker = f"byteleap-ssh-stop-{tmp_path.name}"
    started = tmp_path / "leases" / LEASE / "started"
    async with ssh_into(runner) as (conn, bridge):
        process = await conn.create_process(f"touch started; exec -a {marker} sleep 300")
        while not started.exists():  # noqa: ASYNC110 (a file, not an event)
            await asyncio.sleep(0.05)
        await runner.stop(SESSION)
        await asyncio.wait_for(bridge.exited, 20)
        await asyncio.wait_for(process.wait_closed(), 20)
    assert not runner.ssh_sessions
    for _ in range(100):
        pgrep = await asyncio.create_subprocess_exec("pgrep", "-f", marker)
        if await pgrep.wait() == 1:  # no such process any more
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the connection's program outlived it")


@pytest.mark.adversarial
def test_an_ssh_session_takes_no_command() -> None:
    with pytest.raises(ValueError, match="ssh session takes no command"):
        ExecStart(ssh=True, command=["id"])
    for extra in ('"command": ["id"]', '"tty": true', '"env": {"A": "1"}', '"rows": 3, "cols": 4'):
        with pytest.raises(ExecFrameError):
            parse_exec_frame(f'{{"type": "exec_start", "ssh": true, {extra}}}')
    assert parse_exec_frame('{"type": "exec_start", "ssh": true}') == ExecStart(ssh=True)
    assert '"ssh"' not in ExecStart(command=["id"]).model_dump_json()  # as before the field


def _text(data: object) -> str:
    assert isinstance(data, bytes)
    return data.decode()
