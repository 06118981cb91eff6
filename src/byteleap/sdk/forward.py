"""Local port forwarding into a lease, over the lease's exec WebSocket.

Each connection to the local port opens one exec session on the leased worker running a
small relay (`RELAY`, Python's standard library only) that connects to ``host:port`` as seen
from the worker and copies bytes both ways: the local socket's bytes travel as the session's
stdin, the remote's as its stdout. So forwarding needs no port opened on the miner or the
worker, and it is authenticated, paced and billed like any exec session: a slow local reader
slows the remote side through the session's window.

Each direction's end is passed on: the local side's EOF closes the relay's write half
(``shutdown(SHUT_WR)``), and the remote closing ends the session, which closes the local
connection. A remote that refuses ends the session at once with the relay's error.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from byteleap.protocol.exec_frames import MAX_EXEC_DATA, ExecExited

if TYPE_CHECKING:
    from byteleap.sdk.client import AsyncClient

log = logging.getLogger(__name__)

#: Run on the worker as ``python3 -c RELAY HOST PORT``.
RELAY = """
import os, socket, sys, threading
try:
    remote = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10)
except OSError as exc:
    sys.exit(f"cannot connect to {sys.argv[1]}:{sys.argv[2]} from the worker: {exc}")
remote.settimeout(None)
def upstream():
    while data := os.read(0, 65536):
        remote.sendall(data)
    remote.shutdown(socket.SHUT_WR)
threading.Thread(target=upstream, daemon=True).start()
while data := remote.recv(65536):
    view = memoryview(data)
    while view:
        view = view[os.write(1, view):]
"""


def relay_command(host: str, port: int) -> list[str]:
    return ["python3", "-c", RELAY, host, str(port)]


async def forward_port(
    client: AsyncClient,
    lease_id: str,
    remote_host: str,
    remote_port: int,
    *,
    local_host: str = "127.0.0.1",
    local_port: int = 0,
) -> asyncio.Server:
    """Listen on ``local_host:local_port`` (0: any free port; see the server's sockets) and
    carry each connection to ``remote_host:remote_port`` as the lease's worker sees it."""

    async def carry(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            session = await client.open_exec(lease_id, relay_command(remote_host, remote_port))
        except Exception as exc:  # the gateway refused: this connection ends, the rest go on
            log.warning("forwarding refused: %s", exc)
            writer.close()
            return
        async with session:

            async def upstream() -> None:
                while data := await reader.read(MAX_EXEC_DATA):
                    await session.send(data)
                await session.send(eof=True)

            sending = asyncio.create_task(upstream())
            try:
                while not isinstance(frame := await session.recv(), ExecExited):
                    if frame.stream == "stdout":
                        writer.write(frame.data)
                        await writer.drain()
                    else:
                        log.warning("on the worker: %s", frame.data.decode(errors="replace"))
                if frame.exit_code != 0:
                    log.warning("forwarded connection ended: %s", frame.reason or frame.exit_code)
            except (ConnectionError, OSError):
                pass  # the local side went away: the session closes with it
            finally:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sending
                writer.close()

    return await asyncio.start_server(carry, local_host, local_port)
