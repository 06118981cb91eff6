"""SSH into a lease, served by the worker itself over an exec session (``ExecStart.ssh``).

No port opens anywhere: the session's stdin frames carry an SSH client's bytes (``ssh`` with
``byteleap leases ssh-proxy`` as its ProxyCommand) and its stdout frames the server's, paced
by the same window as any session's output. The worker terminates SSH in-process with
asyncssh on one end of a socket pair and pumps the other end to and from the frames.

Authentication: none inside SSH, on purpose. The exec session is already authenticated by the
tenant's API key at the gateway and bound to this lease by the miner, and this SSH server is
reachable only through it, so any client is let in (``begin_auth`` says none is needed, which
OpenSSH's first "none" request then gets) — whatever user name or keys it brings.

The server's host key is one per lease, made on first use and kept under the worker's home
(``lease-host-keys/``), beside — not inside — the lease's work dir, so a client's
``known_hosts`` entry for the lease stays right for the lease's life.

What a client gets: a shell (on a terminal when it asks for one; its resizes follow),
commands, and the sftp subsystem (so modern ``scp``, which speaks SFTP, and legacy ``scp -O``,
which asyncssh serves through the same SFTP server). Programs run as exec sessions' do
(`ProgramRunner.program`: the lease's dir, a clean environment, killed with the connection).
SFTP paths are rooted at the lease's dir (asyncssh's ``chroot``): ``/`` is the lease's dir and
``..`` stops there. That keeps a client's paths in the lease; it is no boundary against the
tenant's own programs, which run with the same rights as any exec session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

from byteleap.protocol.exec_frames import MAX_EXEC_DATA, ExecExited, ExecOutput, ExecStdin
from byteleap.worker.exec_session import (
    ProgramRunner,
    Send,
    Session,
    Window,
    read_pty,
    set_terminal_size,
)

with warnings.catch_warnings():
    # asyncssh still names cryptography's deprecated DSA on import; it is never used here.
    warnings.filterwarnings("ignore", "DSA is deprecated")
    import asyncssh

log = logging.getLogger(__name__)
# asyncssh logs each connection's and SFTP request's steps at INFO: the worker's log keeps
# its own lines, and asyncssh's warnings and errors.
logging.getLogger("asyncssh").setLevel(logging.WARNING)

HOST_KEY_ALG = "ssh-ed25519"
CLOSE_GRACE_S = 5.0  # for a connection's programs to be told to end once it closed


def host_key(home: Path, lease_id: str) -> asyncssh.SSHKey:
    """The lease's host key: made on first use, then the same for the lease's life."""
    keys = home / "lease-host-keys"
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = keys / lease_id
    if not path.exists():
        made = asyncssh.generate_private_key(HOST_KEY_ALG)
        draft = keys / f".{lease_id}.{os.getpid()}.{id(made)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(made.export_private_key())
        # link, not rename: of two first sessions at once, the first key made wins for both
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return asyncssh.read_private_key(path)


class _AnyClient(asyncssh.SSHServer):
    def begin_auth(self, username: str) -> bool:
        return False  # no authentication needed: the exec session already is (see above)


class _LeaseSftp(asyncssh.SFTPServer):
    def exit(self) -> None:
        # OpenSSH's scp judges a transfer by the subsystem's exit status, which sshd's
        # sftp-server gives; asyncssh's SFTP server closes its channel without one.
        with contextlib.suppress(Exception):  # the channel is already gone
            self.channel.exit(0)
        super().exit()


class SshSession:
    """One SSH connection over one exec session."""

    def __init__(self, runner: ProgramRunner, session: str, lease_id: str, send: Send) -> None:
        self.runner = runner
        self.session = session
        self.workdir = runner.workdir(lease_id)
        self.send = send
        self.window = Window()
        self.ours, self.theirs = socket.socketpair()
        self.ours.setblocking(False)
        self.server: asyncssh.SSHServerConnection | None = None
        self.key: asyncssh.SSHKey | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    @classmethod
    async def open(
        cls, runner: ProgramRunner, session: str, lease_id: str, send: Send
    ) -> SshSession:
        """Ready to serve (OSError: the lease's dir or host key cannot be made)."""
        ssh = cls(runner, session, lease_id, send)
        try:
            await asyncio.to_thread(ssh.workdir.mkdir, parents=True, exist_ok=True)
            ssh.key = await asyncio.to_thread(host_key, runner.home, lease_id)
        except BaseException:
            ssh.ours.close()
            ssh.theirs.close()
            raise
        return ssh

    async def run(self, inbox: asyncio.Queue[ExecStdin]) -> None:
        """Serve until the connection ends; then report the session's end."""
        loop = asyncio.get_running_loop()
        # The client's bytes must flow before the server can finish its handshake.
        upstream = asyncio.create_task(self._upstream(loop, inbox))
        downstream = asyncio.create_task(self._downstream(loop))
        reason = ""
        try:
            self.server = await asyncssh.run_server(
                self.theirs,
                server_factory=_AnyClient,
                server_host_keys=[self.key],
                process_factory=self._process,
                sftp_factory=self._sftp,
                allow_scp=True,
                line_editor=False,  # the program's terminal echoes and edits, as under sshd
                encoding=None,
            )
            await self.server.wait_closed()
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            reason = f"ssh: {exc}"
            log.info("ssh session ended", extra={"why": reason})
        finally:
            if self.server is None:  # no handshake: the socket is still ours to close
                self.theirs.close()
            # What the server said last reaches the client, unless nobody reads any more.
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(downstream, CLOSE_GRACE_S)
            self.close()
            upstream.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await upstream
            self.ours.close()
            await self._programs_told_to_end()
        code = None if reason else 0
        ended = ExecExited(session=self.session, exit_code=code, reason=reason)
        await self.send(ended.model_dump_json())

    def close(self) -> None:
        """End the connection (the session was stopped, or it is over)."""
        self.window.close()
        if self.server is not None:
            self.server.abort()
        with contextlib.suppress(OSError):  # the server sees the end of its connection
            self.ours.shutdown(socket.SHUT_RDWR)

    async def _upstream(
        self, loop: asyncio.AbstractEventLoop, inbox: asyncio.Queue[ExecStdin]
    ) -> None:
        while True:
            frame = await inbox.get()
            if frame.data:
                await loop.sock_sendall(self.ours, frame.data)
            if frame.eof:  # the client hung up: the server sees the end of its connection
                self.ours.shutdown(socket.SHUT_WR)
                return

    async def _downstream(self, loop: asyncio.AbstractEventLoop) -> None:
        while data := await loop.sock_recv(self.ours, MAX_EXEC_DATA):
            if not await self.window.take():
                return  # stopped: nobody reads this any more
            frame = ExecOutput(session=self.session, stream="stdout", data=data)
            await self.send(frame.model_dump_json())

    async def _programs_told_to_end(self) -> None:
        if self.handlers:
            await asyncio.wait(set(self.handlers), timeout=CLOSE_GRACE_S)

    def _sftp(self, chan: asyncssh.SSHServerChannel[bytes]) -> asyncssh.SFTPServer:
        """sftp, and modern scp (SFTP too), with paths rooted at the lease's dir."""
        return _LeaseSftp(chan, chroot=os.fsencode(self.workdir.resolve()))

    def _process(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(process))
        self.handlers.add(task)
        task.add_done_callback(self.handlers.discard)

    async def _serve(self, process: asyncssh.SSHServerProcess[bytes]) -> None:
        """Run a shell or a command for one channel, until it exits or the channel closes."""
        tty = process.term_type is not None
        shell = shutil.which("bash") or "/bin/sh"
        if process.command is not None:
            argv = [shell, "-c", process.command]
        else:
            argv = [shell, "-i"] if tty else [shell]
        term = {"TERM": process.term_type} if process.term_type else {}
        env = self.runner.environment(self.workdir, tty, term)
        width, height, _, _ = process.get_terminal_size()
        size = (height, width) if tty and width and height else None
        async with contextlib.AsyncExitStack() as stack:
            try:
                program = self.runner.program(argv, self.workdir, env, tty, size)
                running = await stack.enter_async_context(program)
            except OSError as exc:
                process.stderr.write(f"cannot start: {exc}\r\n".encode())
                process.exit(127)
                return
            work = asyncio.create_task(_bridge(process, running))
            closed = asyncio.create_task(process.wait_closed())
            await asyncio.wait({work, closed}, return_when=asyncio.FIRST_COMPLETED)
            closed.cancel()
            if not work.done():  # the client went away: the program is killed
                work.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await work
                return
            try:
                code = work.result()
            except (OSError, asyncssh.Error):
                return  # the channel broke under the program: nobody to tell its end
        if code >= 0:
            process.exit(code)
        else:
            process.exit_with_signal(signal.Signals(-code).name.removeprefix("SIG"))


async def _bridge(process: asyncssh.SSHServerProcess[bytes], running: Session) -> int:
    """Copy the channel's input to the program and its output back; its exit code."""
    program = running.process
    loop = asyncio.get_running_loop()

    async def into() -> None:
        while True:
            try:
                data = await process.stdin.read(MAX_EXEC_DATA)
            except asyncssh.TerminalSizeChanged as change:
                if running.stdin_fd is not None and change.width and change.height:
                    with contextlib.suppress(OSError):
                        set_terminal_size(running.stdin_fd, (change.height, change.width))
                continue
            except (asyncssh.BreakReceived, asyncssh.SignalReceived):
                continue
            if running.stdin_fd is not None:
                if not data:
                    await loop.run_in_executor(None, os.write, running.stdin_fd, b"\x04")
                    return
                await loop.run_in_executor(None, os.write, running.stdin_fd, data)
                continue
            assert program.stdin is not None
            if not data:
                program.stdin.close()
                return
            program.stdin.write(data)
            await program.stdin.drain()

    async def out(read: Callable[[], Awaitable[bytes]], to: asyncssh.SSHWriter[bytes]) -> None:
        while data := await read():
            to.write(data)
            await to.drain()

    feeding = asyncio.create_task(into())
    try:
        if running.stdin_fd is None:
            assert program.stdout is not None and program.stderr is not None
            stdout, stderr = program.stdout, program.stderr
            await asyncio.gather(
                out(lambda: stdout.read(MAX_EXEC_DATA), process.stdout),
                out(lambda: stderr.read(MAX_EXEC_DATA), process.stderr),
            )
        else:
            fd = running.stdin_fd
            try:
                await out(lambda: asyncio.to_thread(read_pty, fd), process.stdout)
            finally:
                with contextlib.suppress(OSError):
                    os.close(fd)
        return await program.wait()
    finally:
        feeding.cancel()
        with contextlib.suppress(asyncio.CancelledError, OSError, ConnectionError):
            await feeding
