"""The worker's side of lease exec sessions: run a command (or a shell) for the renter.

Process leases get a process in the lease's own work dir (``<home>/leases/<lease id>``, kept
for the lease's life so files persist between sessions) with a clean environment, as the
process executor gives jobs (PATH, HOME = the work dir, LANG, and what the session asks
for) — never the worker's own. Each program leads its own session, so stopping it (the
renter hung up, the lease ended, the link dropped) kills everything it started. Output goes
back in frames of at most ``MAX_EXEC_DATA`` bytes, at most ``EXEC_WINDOW`` of them ahead of
the miner's `ExecAck`s: while the renter reads slowly, the program's output waits in its
pipe (and the program, once the pipe is full) rather than in anyone's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pty
import shutil
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from byteleap.protocol.exec_frames import (
    MAX_EXEC_DATA,
    ExecAck,
    ExecExited,
    ExecOutput,
    ExecResize,
    ExecStart,
    ExecStdin,
)
from byteleap.worker.exec_session import (
    STDIN_BACKLOG,
    Send,
    Session,
    control_the_terminal,
    read_pty,
    set_terminal_size,
)
from byteleap.worker.executors.process_guard import preexec, process_guard

if TYPE_CHECKING:
    from byteleap.worker.ssh_access import SshSession

log = logging.getLogger(__name__)

DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
KILL_GRACE_S = 2.0


@dataclass
class ExecRunner:
    home: Path
    # What shows a session only the worker's GPUs (gpu_choice): set last, over the session's
    # own env, so a lease on a one-GPU worker is not handed its neighbours' cards.
    gpu_env: dict[str, str] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    ssh_sessions: dict[str, SshSession] = field(default_factory=dict)
    # stdin waiting for each session, from the moment its start arrived (its input may
    # arrive before the program is up)
    inboxes: dict[str, asyncio.Queue[ExecStdin]] = field(default_factory=dict)
    # Kills of programs whose session ended under them (held so they are not collected).
    _endings: set[asyncio.Task[None]] = field(default_factory=set)

    def begin(self, frame: ExecStart) -> None:
        """Take a session's input from now on; call before `start`, in arrival order."""
        if frame.session is not None:
            self.inboxes.setdefault(frame.session, asyncio.Queue(STDIN_BACKLOG))

    async def start(self, frame: ExecStart, send: Send) -> None:
        session = frame.session
        assert session is not None and frame.lease_id is not None
        self.begin(frame)
        try:
            await self._run(session, frame, send)
        finally:
            self.inboxes.pop(session, None)

    def workdir(self, lease_id: str) -> Path:
        """The lease's own work dir, kept for the lease's life."""
        return self.home / "leases" / lease_id

    def environment(self, workdir: Path, tty: bool, extra: dict[str, str]) -> dict[str, str]:
        """A session's whole environment: clean (never the worker's own), then ``extra``,
        then the GPUs the worker may use."""
        env = {"PATH": DEFAULT_PATH, "HOME": str(workdir.resolve()), "LANG": "C.UTF-8"}
        env |= {"TERM": "xterm"} if tty else {}
        return env | extra | self.gpu_env

    @contextlib.asynccontextmanager
    async def program(
        self,
        argv: list[str],
        workdir: Path,
        env: dict[str, str],
        tty: bool,
        size: tuple[int, int] | None = None,
    ) -> AsyncIterator[Session]:
        """A program of a session, killed (with all it started) if it outlives the block."""
        running = await self._spawn(argv, workdir, env, tty, size)
        try:
            yield running
        finally:
            if running.process.returncode is None:  # the session ended under the program
                ending = asyncio.get_running_loop().create_task(_kill(running.process))
                self._endings.add(ending)
                ending.add_done_callback(self._endings.discard)
                ending.add_done_callback(lambda _: process_guard().release(running.process.pid))
            else:
                process_guard().release(running.process.pid)

    async def _run(self, session: str, frame: ExecStart, send: Send) -> None:
        assert frame.lease_id is not None
        workdir = self.workdir(frame.lease_id)
        if frame.ssh:
            await self._run_ssh(session, frame.lease_id, send)
            return
        async with contextlib.AsyncExitStack() as stack:
            try:
                await asyncio.to_thread(workdir.mkdir, parents=True, exist_ok=True)
                argv = frame.command or [shutil.which("bash") or "/bin/sh", "-i"]
                env = self.environment(workdir, frame.tty, frame.env)
                size = (frame.rows, frame.cols) if frame.rows and frame.cols else None
                program = self.program(argv, workdir, env, frame.tty, size)
                running = await stack.enter_async_context(program)
            except OSError as exc:
                reason = f"cannot start: {exc}"
                await send(ExecExited(session=session, reason=reason).model_dump_json())
                return
            self.sessions[session] = running
            # Stdin is written by one task per session, so frames keep their order and a
            # program that does not read its input holds up only itself.
            writer = asyncio.create_task(self._write_stdin(running, self.inboxes[session]))
            try:
                await self._pump(session, running, send)
            finally:
                self.sessions.pop(session, None)
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer

    async def _run_ssh(self, session: str, lease_id: str, send: Send) -> None:
        """One SSH connection served in-process (see ssh_access.py) over the session."""
        # Here, not at the top: ssh_access builds on this module (and asyncssh loads only on
        # a worker that is asked for SSH).
        from byteleap.worker.ssh_access import SshSession

        try:
            ssh = await SshSession.open(self, session, lease_id, send)
        except OSError as exc:
            await send(ExecExited(session=session, reason=f"cannot start: {exc}").model_dump_json())
            return
        self.ssh_sessions[session] = ssh
        try:
            await ssh.run(self.inboxes[session])
        finally:
            self.ssh_sessions.pop(session, None)

    async def _spawn(
        self,
        argv: list[str],
        cwd: Path,
        env: dict[str, str],
        tty: bool,
        size: tuple[int, int] | None = None,
    ) -> Session:
        if not tty:
            process = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, env=env, start_new_session=True, preexec_fn=preexec(),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            process_guard().watch(process.pid)  # its session leader: pgid == pid
            return Session(process, None)
        master, replica = pty.openpty()
        try:
            if size is not None:  # before the program starts, so its first look is right
                set_terminal_size(replica, size)
            process = await asyncio.create_subprocess_exec(
                *argv, cwd=cwd, env=env, start_new_session=True,
                preexec_fn=preexec(control_the_terminal),
                stdin=replica, stdout=replica, stderr=replica,
            )  # fmt: skip
            process_guard().watch(process.pid)
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(replica)
        return Session(process, master)

    async def _pump(self, session: str, running: Session, send: Send) -> None:
        process = running.process

        async def forward(read: Callable[[], Awaitable[bytes]], stream: str) -> None:
            while data := await read():
                # once the session is stopped, read on and drop: the program's pipe must
                # reach its end for the program to be reaped
                if await running.window.take():
                    frame = ExecOutput(session=session, stream=stream, data=data)  # type: ignore[arg-type]
                    await send(frame.model_dump_json())

        if running.stdin_fd is None:
            assert process.stdout is not None and process.stderr is not None
            out, err = process.stdout, process.stderr
            readers = [
                forward(lambda: out.read(MAX_EXEC_DATA), "stdout"),
                forward(lambda: err.read(MAX_EXEC_DATA), "stderr"),
            ]
        else:
            fd = running.stdin_fd
            readers = [forward(lambda: asyncio.to_thread(read_pty, fd), "stdout")]
        try:
            await asyncio.gather(*readers)
            code = await process.wait()
        finally:
            if running.stdin_fd is not None:
                with contextlib.suppress(OSError):
                    os.close(running.stdin_fd)
        await send(ExecExited(session=session, exit_code=code).model_dump_json())

    def ack(self, frame: ExecAck) -> None:
        running = self.sessions.get(frame.session or "") or self.ssh_sessions.get(
            frame.session or ""
        )
        if running is not None:
            running.window.give(frame.frames)

    def resize(self, frame: ExecResize) -> None:
        """Size the session's terminal; the kernel sends the program SIGWINCH. A session not
        on a terminal, over, or not yet started has nothing to size: the frame is dropped."""
        running = self.sessions.get(frame.session or "")
        if running is None or running.stdin_fd is None:
            return
        with contextlib.suppress(OSError):  # the terminal closed under the frame
            set_terminal_size(running.stdin_fd, (frame.rows, frame.cols))

    def stdin(self, frame: ExecStdin) -> None:
        inbox = self.inboxes.get(frame.session or "")
        if inbox is None:
            return  # the session is over
        try:
            inbox.put_nowait(frame)
        except asyncio.QueueFull:  # bounded: the program is not reading; end the session
            log.warning("stdin backlog full; stopping the session")
            running = self.sessions.get(frame.session or "")
            if running is not None:
                asyncio.get_running_loop().create_task(_kill(running.process))
            if (ssh := self.ssh_sessions.get(frame.session or "")) is not None:
                ssh.close()

    async def _write_stdin(self, running: Session, inbox: asyncio.Queue[ExecStdin]) -> None:
        while True:
            await self._write(running, await inbox.get())

    async def _write(self, running: Session, frame: ExecStdin) -> None:
        try:
            if running.stdin_fd is not None:
                if frame.data:
                    await asyncio.to_thread(os.write, running.stdin_fd, frame.data)
                if frame.eof:
                    await asyncio.to_thread(os.write, running.stdin_fd, b"\x04")
                return
            pipe = running.process.stdin
            assert pipe is not None
            if frame.data:
                pipe.write(frame.data)
                await pipe.drain()
            if frame.eof:
                pipe.close()
        except (OSError, ConnectionError) as exc:  # the program closed its stdin
            log.debug("stdin not delivered", extra={"why": repr(exc)})

    async def stop(self, session: str) -> None:
        running = self.sessions.get(session)
        if running is not None:
            running.window.close()  # no acks will come: its output is not wanted any more
            await _kill(running.process)
        if (ssh := self.ssh_sessions.get(session)) is not None:
            ssh.close()

    async def stop_all(self) -> None:
        for ssh in list(self.ssh_sessions.values()):
            ssh.close()
        for running in list(self.sessions.values()):
            running.window.close()
            await _kill(running.process)


async def _kill(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the program's whole session, then SIGKILL it after a grace period."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), KILL_GRACE_S)
            return
