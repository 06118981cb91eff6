"""The lease access endpoint: ``/v1/leases/{lease_id}/exec``, a WebSocket to a command (or a
shell) running in the lease's environment on its worker, through the lease's miner.

Authentication is the REST API's (``Authorization: Bearer <api key>``); a missing or wrong
key is refused with 401, another tenant's or an unknown lease with 404, an ended lease with
409 — as HTTP answers to the handshake. Once open, the customer sends `ExecStart` (the
command, or none for a shell), then `ExecStdin` frames, and receives `ExecOutput` frames and
one final `ExecExited` with the exit code. Every frame is checked and bounded here before it
goes on; the miner ends the session when the lease ends or it idles.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from byteleap.cloud.gateway.errors import CloudError, Unauthorized
from byteleap.cloud.gateway.port import CloudService
from byteleap.cloud.gateway.rest import error_response
from byteleap.net.access import (
    ExecExited,
    ExecFrameError,
    ExecStart,
    ExecStdin,
    ExecStop,
    parse_exec_frame,
)

log = logging.getLogger(__name__)


class ExecChannel(Protocol):
    """The miner's side of one session (a `websockets` client connection)."""

    async def send(self, message: str) -> None: ...
    async def recv(self) -> str | bytes: ...
    async def close(self) -> None: ...


def _bearer(socket: WebSocket) -> str:
    scheme, _, key = socket.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key:
        raise Unauthorized("missing API key: send Authorization: Bearer <api key>")
    return key


def access_router(service: CloudService) -> APIRouter:
    router = APIRouter()

    @router.websocket("/v1/leases/{lease_id}/exec")
    async def lease_exec(socket: WebSocket, lease_id: str) -> None:
        try:
            tenant = await service.authenticate(_bearer(socket))
            upstream = await service.open_lease_exec(tenant, lease_id)
        except CloudError as exc:
            field = getattr(exc, "field", None)
            await socket.send_denial_response(
                error_response(exc.status, exc.reason, str(exc), field)
            )
            return
        await socket.accept()
        try:
            await splice(socket, upstream)
        finally:
            await upstream.close()

    return router


async def splice(socket: WebSocket, upstream: ExecChannel) -> None:
    """Pass frames both ways until the session ends or either side hangs up."""
    inbound = asyncio.create_task(_customer_to_miner(socket, upstream))
    outbound = asyncio.create_task(_miner_to_customer(upstream, socket))
    done, pending = await asyncio.wait({inbound, outbound}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    for task in done | pending:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    with contextlib.suppress(Exception):
        await socket.close()


async def _customer_to_miner(socket: WebSocket, upstream: ExecChannel) -> None:
    started = False
    try:
        while True:
            frame = parse_exec_frame(await socket.receive_text())
            if isinstance(frame, ExecStart) and not started and frame.lease_id is None:
                started = True
            elif not (started and isinstance(frame, ExecStdin | ExecStop)):
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
