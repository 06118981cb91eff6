"""The miner's relay of lease exec sessions: gateway WebSocket ⇄ the leased worker's link.

The gateway opens ``/v1/leases/{lease_id}/exec`` with a btauth-signed handshake; only the
gateway that holds the lease may, and only while it is active. The relay names the session,
starts it on the worker and passes frames both ways until the program exits, either side
hangs up, nothing moves for ``idle_s``, or the lease ends — then the worker is told to stop
it. A worker's frames reach only sessions on that same worker.

Output is paced by credit (``EXEC_WINDOW``, see protocol/exec_frames.py): each frame the
gateway took is acknowledged to the worker, in batches of ``ACK_EVERY``, so a slow reader
makes the worker wait, never this relay's queue overflow. A worker that sends past its window
breaks the protocol, and that ends the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from dataclasses import dataclass, field

from fastapi import WebSocket, WebSocketDisconnect

from byteleap.errors import ByteleapError
from byteleap.miner.leases import MinerLease
from byteleap.miner.links import WorkerLink
from byteleap.protocol.exec_frames import (
    EXEC_WINDOW,
    ExecAck,
    ExecExited,
    ExecFrameError,
    ExecOutput,
    ExecResize,
    ExecStart,
    ExecStdin,
    ExecStop,
    parse_exec_frame,
)

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10.0
LEASE_CHECK_S = 1.0
BACKLOG = EXEC_WINDOW + 1  # a worker's whole window, and its ExecExited
ACK_EVERY = EXEC_WINDOW // 4
FAREWELL_S = 5.0  # the last frame and the close, to a gateway that may not be reading
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
        except asyncio.QueueFull:  # more than its window: the worker ignores the pacing
            log.warning("exec output past the window", extra={"worker": worker_id})
            with contextlib.suppress(asyncio.QueueEmpty):
                relay.outbox.get_nowait()
            ended = ExecExited(session=frame.session, reason="the worker sent past its window")
            relay.outbox.put_nowait(ended)

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
            last = ended.model_copy(update={"session": None}).model_dump_json()
            with contextlib.suppress(TimeoutError):  # a gateway that stopped reading
                await asyncio.wait_for(_send_and_close(socket, last), FAREWELL_S)
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
        unacked = 0
        try:
            while True:
                if (ended := self._ended(relay, lease, inbound)) is not None:
                    return ended
                try:
                    frame = await asyncio.wait_for(relay.outbox.get(), LEASE_CHECK_S)
                except TimeoutError:
                    continue
                if isinstance(frame, ExecExited):
                    return frame
                text = frame.model_copy(update={"session": None}).model_dump_json()
                if (ended := await self._forward(socket, text, relay, lease, inbound)) is not None:
                    return ended
                unacked += 1
                if unacked >= ACK_EVERY or relay.outbox.empty():
                    try:
                        link.post(ExecAck(session=session, frames=unacked).model_dump_json())
                    except ByteleapError as exc:  # the worker's link is gone or jammed
                        return ExecExited(reason=f"the worker is unreachable: {exc}")
                    unacked = 0
        finally:
            inbound.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await inbound

    def _ended(
        self, relay: _Relay, lease: MinerLease, inbound: asyncio.Task[None]
    ) -> ExecExited | None:
        """Why the session must end now, if it must."""
        if not lease.active:
            return ExecExited(reason="the lease ended")
        if asyncio.get_running_loop().time() - relay.active_at > self.idle_s:
            return ExecExited(reason=f"idle for {self.idle_s:g}s")
        if inbound.done():
            inbound.result()  # re-raise a disconnect or a bad frame
            return ExecExited(reason="the caller stopped the session")
        return None

    async def _forward(
        self,
        socket: WebSocket,
        text: str,
        relay: _Relay,
        lease: MinerLease,
        inbound: asyncio.Task[None],
    ) -> ExecExited | None:
        """Send one output frame, however slowly the gateway takes it, unless the session
        must end meanwhile (the lease ended, it idled, the caller stopped it)."""
        sending = asyncio.ensure_future(socket.send_text(text))
        try:
            while True:
                done, _ = await asyncio.wait({sending}, timeout=LEASE_CHECK_S)
                if done:
                    sending.result()
                    relay.active_at = asyncio.get_running_loop().time()  # it is being read
                    return None
                if (ended := self._ended(relay, lease, inbound)) is not None:
                    return ended
        finally:
            if not sending.done():
                sending.cancel()

    async def _inbound(
        self, socket: WebSocket, session: str, relay: _Relay, link: WorkerLink
    ) -> None:
        while True:
            frame = parse_exec_frame(await socket.receive_text())
            relay.active_at = asyncio.get_running_loop().time()
            if isinstance(frame, ExecStop):
                return
            if isinstance(frame, ExecStdin | ExecResize):
                link.post(frame.model_copy(update={"session": session}).model_dump_json())


async def _send_and_close(socket: WebSocket, text: str) -> None:
    await socket.send_text(text)
    await socket.close()
