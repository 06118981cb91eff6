"""`byteleap leases exec | shell`: a command or a shell on a leased worker, through the
gateway's exec WebSocket. Output streams as it comes; the exit status is the program's."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
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


async def _forward_stdin(session: ExecSession) -> None:
    """Send what arrives on our stdin (line by line on a terminal), then end of input."""
    while data := await asyncio.to_thread(os.read, sys.stdin.fileno(), 65536):
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
            feeder = asyncio.create_task(_forward_stdin(session))
            try:
                with _following_resizes(session) if tty else contextlib.nullcontext():
                    return await _print_until_exit(session)
            finally:
                feeder.cancel()


async def _print_until_exit(session: ExecSession) -> int:
    while True:
        frame = await session.recv()
        if isinstance(frame, ExecExited):
            if frame.exit_code is None:
                typer.echo(f"session ended: {frame.reason}", err=True)
                return EXIT_ERROR
            return frame.exit_code if 0 <= frame.exit_code <= 255 else EXIT_ERROR
        out = sys.stdout if frame.stream == "stdout" else sys.stderr
        out.buffer.write(frame.data)
        out.flush()


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
