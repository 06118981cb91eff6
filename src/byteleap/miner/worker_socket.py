"""The miner's side of a worker's WebSocket: admit the worker (enroll or hello), then hand
each message it sends to the one handler for its type (``_HANDLERS``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import WebSocket, WebSocketDisconnect
from pydantic import BaseModel

from byteleap.errors import ByteleapError
from byteleap.miner.access import ExecSessions
from byteleap.miner.links import WorkerLink
from byteleap.miner.networks import LeaseNetworks
from byteleap.miner.node import MinerNode
from byteleap.net.messages import (
    ArtifactChunk,
    AuthNonce,
    ChallengeAborted,
    CheckpointSet,
    Committed,
    Enroll,
    Heartbeat,
    Hello,
    JobEnded,
    JobLogChunk,
    JobOutput,
    JobRefused,
    JobServing,
    LeaseProbed,
    MessageError,
    NetworkJoin,
    Refused,
    Revealed,
    Welcome,
    parse_worker_message,
)
from byteleap.protocol.exec_frames import ExecExited, ExecOutput
from byteleap.protocol.vm_lease import VmReport

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
WS_CLOSE_SILENT = 4408  # missed heartbeats


async def serve_worker(
    node: MinerNode, socket: WebSocket, sessions: ExecSessions | None = None
) -> None:
    await socket.accept()
    ip = socket.client.host if socket.client else "unknown"
    nonce = secrets.token_hex(32)
    await socket.send_text(AuthNonce(nonce=nonce, miner_hotkey=node.hotkey).model_dump_json())
    try:
        first = parse_worker_message(await asyncio.wait_for(socket.receive_text(), HELLO_TIMEOUT_S))
        if not isinstance(first, Enroll | Hello):
            raise MessageError("expected enroll or hello first")
        entry = node.admit(first, nonce, ip)
    except (ByteleapError, TimeoutError) as exc:
        reason = exc.reason if isinstance(exc, ByteleapError) else "timeout"
        log.warning("worker refused", extra={"ip": ip, "why": reason, "detail": str(exc)})
        with contextlib.suppress(Exception):
            await socket.send_text(Refused(reason=reason).model_dump_json())
            await socket.close(code=4401)
        return
    except WebSocketDisconnect:
        return
    link = node.attach(
        entry.worker_id, socket.send_text, lambda: socket.close(code=WS_CLOSE_SILENT)
    )
    await socket.send_text(
        Welcome(worker_id=entry.worker_id, heartbeat_s=node.heartbeat_s).model_dump_json()
    )
    why = "disconnected"
    try:
        why = await _read_worker(node, socket, link, sessions or ExecSessions())
    except WebSocketDisconnect:
        pass
    finally:
        await node.detach(entry.worker_id, why)


async def _read_worker(
    node: MinerNode, socket: WebSocket, link: WorkerLink, sessions: ExecSessions
) -> str:
    worker_id = link.worker_id
    link_ctx = _Link(node, socket, link, sessions)
    while True:
        raw = await socket.receive_text()
        try:
            message = parse_worker_message(raw)
        except MessageError as exc:
            # A bad message costs only itself; the link stays up.
            log.warning("bad worker message", extra={"worker": worker_id, "why": str(exc)})
            continue
        handle = _HANDLERS.get(type(message))
        if handle is None:
            log.warning("unexpected worker message", extra={"worker": worker_id})
            continue
        ended = await handle(link_ctx, message)
        if ended is not None:
            return ended


@dataclass
class _Link:
    """What a handler of one worker's messages may touch."""

    node: MinerNode
    socket: WebSocket
    link: WorkerLink
    sessions: ExecSessions

    @property
    def worker_id(self) -> str:
        return self.link.worker_id


async def _heartbeat(c: _Link, _: Heartbeat) -> str | None:
    if c.node.heartbeat(c.worker_id):
        return None
    await c.socket.send_text(Refused(reason="revoked").model_dump_json())
    await c.socket.close(code=4403)
    return "revoked"


async def _challenge_answer(c: _Link, message: Committed | Revealed | ChallengeAborted) -> None:
    c.link.deliver(message)


async def _exec_frame(c: _Link, message: ExecOutput | ExecExited) -> None:
    c.sessions.deliver(c.worker_id, message)


async def _network_join(c: _Link, message: NetworkJoin) -> None:
    networks = getattr(c.socket.app.state, "lease_networks", None)
    if isinstance(networks, LeaseNetworks):
        networks.on_join(c.worker_id, message)


async def _lease_probed(c: _Link, message: LeaseProbed) -> None:
    if not c.node.leases.probes.deliver(c.worker_id, message):
        log.warning("answer to no probe of this worker", extra={"worker": c.worker_id})


async def _job_serving(c: _Link, message: JobServing) -> None:
    c.node.on_serving(c.worker_id, message)


def _owns_job(c: _Link, job_id: str) -> bool:
    if job_id in {j.request.job_id for j in c.node.jobs.running_on(c.worker_id)}:
        return True
    # a worker may only speak for its own jobs
    log.warning("job message for another worker's job", extra={"worker": c.worker_id})
    return False


async def _job_message(c: _Link, message: JobOutput | JobEnded | JobRefused) -> None:
    if _owns_job(c, message.job_id):
        c.node.on_job_message(message)


async def _log_chunk(c: _Link, message: JobLogChunk) -> None:
    # A log's last chunks follow its job's end: any job of this worker's, running or not.
    job = c.node.jobs.find(message.job_id)
    if job is not None and job.request.worker_id == c.worker_id:
        c.node.jobs.log_chunk(message)
    else:
        log.warning("log chunk for another worker's job", extra={"worker": c.worker_id})


async def _artifact_chunk(c: _Link, message: ArtifactChunk) -> None:
    if _owns_job(c, message.job_id):
        c.node.jobs.artifact(message)


async def _checkpoint_set(c: _Link, message: CheckpointSet) -> None:
    if _owns_job(c, message.job_id):
        c.node.jobs.checkpoint(message)


async def _vm_report(c: _Link, message: VmReport) -> None:
    if not c.node.leases.report_vm(c.worker_id, message, c.node.clock()):
        log.warning("vm report for another worker's lease", extra={"worker": c.worker_id})


Handler = Callable[[_Link, Any], Awaitable[str | None]]
#: One handler per message type a worker may send once it is admitted; a handler's answer,
#: when not None, ends the link with that reason.
_HANDLERS: dict[type[BaseModel], Handler] = {
    Heartbeat: _heartbeat,
    Committed: _challenge_answer,
    Revealed: _challenge_answer,
    ChallengeAborted: _challenge_answer,
    ExecOutput: _exec_frame,
    ExecExited: _exec_frame,
    NetworkJoin: _network_join,
    LeaseProbed: _lease_probed,
    JobServing: _job_serving,
    JobOutput: _job_message,
    JobLogChunk: _log_chunk,
    JobEnded: _job_message,
    JobRefused: _job_message,
    ArtifactChunk: _artifact_chunk,
    CheckpointSet: _checkpoint_set,
    VmReport: _vm_report,
}
