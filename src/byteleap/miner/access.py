"""The miner's relay of lease exec sessions: gateway WebSocket ⇄ the leased worker's link.

The gateway opens ``/v1/leases/{lease_id}/exec`` with a btauth-signed handshake; only the
gateway that holds the lease may, and only while it is active. The relay names the session,
starts it on the worker and passes frames both ways until the program exits, either side
hangs up, nothing moves for ``idle_s``, or the lease ends — then the worker is told to stop
it. A worker's frames reach only sessions on that same worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect

from byteleap.miner.leases import MinerLease
from byteleap.miner.links import WorkerLink
from byteleap.net.access import (
    ExecExited,
    ExecFrameError,
    ExecOutput,
    ExecStart,
    ExecStdin,
    ExecStop,
    parse_exec_frame,
)

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
LEASE_CHECK_S = 1.0
BACKLOG = 256  # output frames waiting for a slow gateway
WS_CLOSE_ENDED = 4000 + 410


@dataclass
class _Relay:
    worker_id: str
    active_at: float = field(default_factory=lambda: asyncio.get_running_loop().time())
    outbox: asyncio.Queue[ExecOutput | ExecExited] = field(
        default_factory=lambda: asyncio.Queue(BACKLOG)
    )


class ExecSessions:
    """The miner's live exec sessions, by id."""

    def __init__(self, idle_s: float = 600.0) -> None:
        self.idle_s = idle_s
        self._relays: dict[str, _Relay] = {}

    def deliver(self, worker_id: str, frame: ExecOutput | ExecExited) -> None:
        relay = self._relays.get(frame.session or "")
        if relay is None or relay.worker_id != worker_id:
            log.warning("exec frame for no session of this worker", extra={"worker": worker_id})
            return
        try:
            relay.outbox.put_nowait(frame)
            relay.active_at = asyncio.get_running_loop().time()
        except asyncio.QueueFull:  # the gateway stopped reading: end the session
            log.warning("exec output backlog full", extra={"worker": worker_id})
            with contextlib.suppress(asyncio.QueueEmpty):
                relay.outbox.get_nowait()
            relay.outbox.put_nowait(ExecExited(session=frame.session, reason="output backlog"))

    async def relay(self, socket: WebSocket, lease: MinerLease, link: WorkerLink) -> None:
        """Run one session for an accepted gateway socket until it ends."""
        session = secrets.token_hex(16)
        relay = _Relay(link.worker_id)
        self._relays[session] = relay
        try:
            raw = await asyncio.wait_for(socket.receive_text(), START_TIMEOUT_S)
            start = parse_exec_frame(raw)
            if not isinstance(start, ExecStart):
                raise ExecFrameError("the first frame must be exec_start")
            link.post(
                start.model_copy(
                    update={"session": session, "lease_id": lease.request.lease_id}
                ).model_dump_json()
            )
            ended = await self._pump(socket, session, relay, lease, link)
            await socket.send_text(ended.model_copy(update={"session": None}).model_dump_json())
            await socket.close()
        except (TimeoutError, ExecFrameError) as exc:
            with contextlib.suppress(Exception):
                await socket.send_text(ExecExited(reason=str(exc) or "timeout").model_dump_json())
                await socket.close(code=1008)
        except WebSocketDisconnect:
            pass
        finally:
            self._relays.pop(session, None)
            with contextlib.suppress(Exception):  # stop it whatever ended the relay
                link.post(ExecStop(session=session).model_dump_json())

    async def _pump(
        self, socket: WebSocket, session: str, relay: _Relay, lease: MinerLease, link: WorkerLink
    ) -> ExecExited:
        inbound = asyncio.create_task(self._inbound(socket, session, relay, link))
        loop = asyncio.get_running_loop()
        try:
            while True:
                if not lease.active:
                    return ExecExited(reason="the lease ended")
                if loop.time() - relay.active_at > self.idle_s:
                    return ExecExited(reason=f"idle for {self.idle_s:g}s")
                if inbound.done():
                    inbound.result()  # re-raise a disconnect or a bad frame
                    return ExecExited(reason="the caller stopped the session")
                try:
                    frame = await asyncio.wait_for(relay.outbox.get(), LEASE_CHECK_S)
                except TimeoutError:
                    continue
                if isinstance(frame, ExecExited):
                    return frame
                await socket.send_text(frame.model_copy(update={"session": None}).model_dump_json())
        finally:
            inbound.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await inbound

    async def _inbound(
        self, socket: WebSocket, session: str, relay: _Relay, link: WorkerLink
    ) -> None:
        while True:
            frame = parse_exec_frame(await socket.receive_text())
            relay.active_at = asyncio.get_running_loop().time()
            if isinstance(frame, ExecStop):
                return
            if isinstance(frame, ExecStdin):
                link.post(frame.model_copy(update={"session": session}).model_dump_json())
