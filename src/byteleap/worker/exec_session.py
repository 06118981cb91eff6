"""The parts of an exec session that both kinds share: a program's (``worker.access``) and an
SSH connection's (``worker.ssh_access``): the output window, a running program, the terminal."""

from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import struct
import termios
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from byteleap.protocol.exec_frames import EXEC_WINDOW, MAX_EXEC_DATA, ExecStdin

Send = Callable[[str], Awaitable[None]]
STDIN_BACKLOG = 256  # frames waiting for a program that does not read its input


class Window:
    """How many output frames the session may still send before the miner acknowledges."""

    def __init__(self, size: int = EXEC_WINDOW) -> None:
        self.credit = size
        self.closed = False  # the session is over: stop waiting
        self._changed = asyncio.Event()

    async def take(self) -> bool:
        """One frame's credit, once there is some; False when the session ended meanwhile."""
        while self.credit <= 0 and not self.closed:
            self._changed.clear()
            await self._changed.wait()
        if self.closed:
            return False
        self.credit -= 1
        return True

    def give(self, frames: int) -> None:
        self.credit = min(self.credit + frames, EXEC_WINDOW)  # a confused miner gets no more
        self._changed.set()

    def close(self) -> None:
        self.closed = True
        self._changed.set()


@dataclass
class Session:
    process: asyncio.subprocess.Process
    stdin_fd: int | None  # the pty master, or None when stdin is a pipe
    inbox: asyncio.Queue[ExecStdin] = field(default_factory=lambda: asyncio.Queue(STDIN_BACKLOG))
    window: Window = field(default_factory=Window)


class ProgramRunner(Protocol):
    """What an SSH connection asks of the worker's exec runner to start its programs."""

    home: Path

    def workdir(self, lease_id: str) -> Path: ...

    def environment(self, workdir: Path, tty: bool, extra: dict[str, str]) -> dict[str, str]: ...

    def program(
        self,
        argv: list[str],
        workdir: Path,
        env: dict[str, str],
        tty: bool,
        size: tuple[int, int] | None = None,
    ) -> AbstractAsyncContextManager[Session]: ...


def read_pty(fd: int) -> bytes:
    try:
        return os.read(fd, MAX_EXEC_DATA)
    except OSError:  # EIO: every holder of the terminal is gone
        return b""


def set_terminal_size(fd: int, size: tuple[int, int]) -> None:
    """(rows, columns) on a terminal; on a pty's master it reaches the program's side too."""
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", *size, 0, 0))


#: What a terminal's keys and resizes send: a program on one gets them as under a login.
TERMINAL_SIGNALS = (
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGWINCH,
)


def control_the_terminal() -> None:
    """In the child, after its ``setsid``: make the pty (its stdin) the session's controlling
    terminal, so the program is the terminal's foreground group: it gets SIGWINCH on a
    resize and ^C as SIGINT, as under a local terminal. The terminal's signals start at their
    defaults: a worker started in the background (SIGINT ignored, as a shell's ``&`` does)
    would otherwise hand the ignoring on, and a shell cannot trap a signal ignored at its
    start (POSIX), so ^C would do nothing."""
    for sig in TERMINAL_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
