"""`byteleap leases exec | shell`: a command or a shell on a leased worker, through the
gateway's exec WebSocket. Output streams as it comes; the exit status is the program's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from byteleap.commands.customer import (
    DEFAULT_GATEWAY,
    EXIT_ERROR,
    ApiKeyOption,
    CaBundleOption,
    GatewayOption,
    require_key,
    run_customer,
)
from byteleap.protocol.exec_frames import ExecExited
from byteleap.sdk import AsyncClient
from byteleap.sdk.access import ExecSession


def _stdin_chunks(loop: asyncio.AbstractEventLoop, into: asyncio.Queue[bytes]) -> None:
    """In a daemon thread: each chunk read from stdin, then b"" at its end. Not the loop's
    executor: `asyncio.run` waits for those threads, so a read pending on a terminal where
    nothing is typed would hold the CLI open after the program ended."""
    while True:
        try:
            data = os.read(sys.stdin.fileno(), 65536)
        except OSError:
            data = b""
        loop.call_soon_threadsafe(into.put_nowait, data)
        if not data:
            return


async def forward_stdin(session: ExecSession) -> None:
    """Send what arrives on our stdin (line by line on a terminal), then end of input."""
    chunks: asyncio.Queue[bytes] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    threading.Thread(target=_stdin_chunks, args=(loop, chunks), daemon=True).start()
    while data := await chunks.get():
        await session.send(data)
    await session.send(eof=True)


async def _session(
    gateway: str,
    api_key: str,
    lease_id: str,
    command: list[str] | None,
    tty: bool,
    ca_bundle: Path | None,
) -> int:
    async with AsyncClient(gateway, api_key, ca_bundle=ca_bundle) as client:
        session = await client.open_exec(lease_id, command, tty=tty, size=_terminal_size(tty))
        async with session:
            feeder = asyncio.create_task(forward_stdin(session))
            try:
                with _following_resizes(session) if tty else contextlib.nullcontext():
                    ended = await print_until_end(session)
            finally:
                feeder.cancel()
    if ended.exit_code is None:
        typer.echo(f"session ended: {ended.reason}", err=True)
        return EXIT_ERROR
    return ended.exit_code if 0 <= ended.exit_code <= 255 else EXIT_ERROR


async def print_until_end(session: ExecSession) -> ExecExited:
    """The session's output on our stdout and stderr as it comes; then how it ended."""
    while not isinstance(frame := await session.recv(), ExecExited):
        out = sys.stdout if frame.stream == "stdout" else sys.stderr
        out.buffer.write(frame.data)
        out.flush()
    return frame


@contextlib.contextmanager
def _following_resizes(session: ExecSession) -> Iterator[None]:
    """While the shell runs, each resize of this terminal (SIGWINCH) is sent on, so a
    full-screen program on the worker redraws at the new size."""
    loop = asyncio.get_running_loop()
    sending: set[asyncio.Task[None]] = set()

    def resized() -> None:
        size = _terminal_size(True)
        if size is not None:
            task = loop.create_task(session.resize(*size))
            sending.add(task)
            task.add_done_callback(sending.discard)

    loop.add_signal_handler(signal.SIGWINCH, resized)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGWINCH)


def _run(
    gateway: str,
    api_key: str,
    lease_id: str,
    command: list[str] | None,
    tty: bool,
    ca_bundle: Path | None = None,
) -> None:
    require_key(api_key)
    raise typer.Exit(run_customer(_session(gateway, api_key, lease_id, command, tty, ca_bundle)))


def exec_command(
    lease_id: str,
    command: Annotated[list[str], typer.Argument(help="The command, after --.")],
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Run a command on the lease's worker (stdin is passed on) and exit with its status."""
    _run(gateway, api_key, lease_id, command, tty=False, ca_bundle=ca_bundle)


def shell_command(
    lease_id: str,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """An interactive shell on the lease's worker."""
    _run(gateway, api_key, lease_id, None, tty=True, ca_bundle=ca_bundle)


def _terminal_size(tty: bool) -> tuple[int, int] | None:
    """This terminal's (rows, columns) for a session on a terminal; None when there is none."""
    if not tty:
        return None
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except (OSError, ValueError):  # not a terminal (piped), or no stdout
        return None
    return (size.lines, size.columns) if size.lines and size.columns else None
