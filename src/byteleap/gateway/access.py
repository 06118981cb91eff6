"""The lease access endpoint: ``/v1/leases/{lease_id}/exec``, a WebSocket to a command (or a
shell) running in the lease's environment on its worker, through the lease's miner.

Authentication is the REST API's (``Authorization: Bearer <api key>``); a missing or wrong
key is refused with 401, another tenant's or an unknown lease with 404, an ended lease with
409 — as HTTP answers to the handshake. Once open, the customer sends `ExecStart` (the
command, or none for a shell), then `ExecStdin` frames, and receives `ExecOutput` frames and
one final `ExecExited` with the exit code. Every frame is checked and bounded here before it
goes on; the miner ends the session when the lease ends or it idles. The key is re-checked
every ``key_recheck_s``: once it is revoked the session ends with an `ExecExited` saying so
and close code ``WS_CLOSE_REVOKED``.

Output is not buffered here: a frame is taken from the miner only once the customer's socket
took the one before, so a slow reader slows the program (the miner and the worker hold back
too, see miner/access.py) instead of filling anyone's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable
from typing import Protocol

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from byteleap.gateway.errors import CloudError
from byteleap.gateway.key_watch import REVOKED_DETAIL, key_revoked
from byteleap.gateway.port import CloudService
from byteleap.gateway.rest_common import DEFAULT_KEY_RECHECK_S, bearer_key, error_response
from byteleap.protocol.exec_frames import (
    ExecExited,
    ExecFrameError,
    ExecResize,
    ExecStart,
    ExecStdin,
    ExecStop,
    parse_exec_frame,
)

log = logging.getLogger(__name__)

WS_CLOSE_REVOKED = 4000 + 401


class ExecChannel(Protocol):
    """The miner's side of one session (a `websockets` client connection)."""

    async def send(self, message: str) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self) -> None: ...


def access_router(service: CloudService, key_recheck_s: float = DEFAULT_KEY_RECHECK_S) -> APIRouter:
    router = APIRouter()

    @router.websocket("/v1/leases/{lease_id}/exec")
    async def lease_exec(socket: WebSocket, lease_id: str) -> None:
        try:
            key = bearer_key(socket.headers)
            tenant = await service.authenticate(key)
            upstream = await service.open_lease_exec(tenant, lease_id)
        except CloudError as exc:
            field = getattr(exc, "field", None)
            await socket.send_denial_response(
                error_response(exc.status, exc.reason, str(exc), field)
            )
            return
        await socket.accept()
        try:
            await splice(socket, upstream, key_revoked(service, key, key_recheck_s))
        finally:
            await upstream.close()

    return router


async def splice(
    socket: WebSocket, upstream: ExecChannel, revoked: Awaitable[None] | None = None
) -> None:
    """Pass frames both ways until the session ends, either side hangs up, or ``revoked``
    (the key's watch) returns."""
    inbound = asyncio.create_task(_customer_to_miner(socket, upstream))
    outbound = asyncio.create_task(_miner_to_customer(upstream, socket))
    watch = asyncio.ensure_future(revoked) if revoked is not None else None
    tasks: set[asyncio.Future[None]] = {inbound, outbound} | ({watch} if watch else set())
    done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in done | pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    if watch is not None and watch in done and not watch.cancelled():
        log.info("exec session ended: its API key was revoked")
        with contextlib.suppress(Exception):
            await socket.send_text(ExecExited(reason=REVOKED_DETAIL).model_dump_json())
            await socket.close(code=WS_CLOSE_REVOKED, reason="API key revoked")
        return
    with contextlib.suppress(Exception):
        await socket.close()


async def _customer_to_miner(socket: WebSocket, upstream: ExecChannel) -> None:
    started = False
    try:
        while True:
            frame = parse_exec_frame(await socket.receive_text())
            if isinstance(frame, ExecStart) and not started and frame.lease_id is None:
                started = True
            elif not (started and isinstance(frame, ExecStdin | ExecResize | ExecStop)):
                raise ExecFrameError(f"{frame.type} is not expected now")
            await upstream.send(frame.model_dump_json())
    except ExecFrameError as exc:
        await socket.send_text(ExecExited(reason=str(exc)).model_dump_json())
    except WebSocketDisconnect:
        pass
    with contextlib.suppress(Exception):
        await upstream.send(ExecStop().model_dump_json())


async def _miner_to_customer(upstream: ExecChannel, socket: WebSocket) -> None:
    with contextlib.suppress(Exception):  # the miner closing is the end, whatever its code
        while True:
            raw = await upstream.recv()
            frame = parse_exec_frame(raw)
            await socket.send_text(frame.model_dump_json())
            if isinstance(frame, ExecExited):
                return
