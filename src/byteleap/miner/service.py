"""The miner's HTTPS app: the validator API (signed both ways) and the worker WebSocket.

Handlers parse a typed body, call one `MinerNode` method and map its errors;
every validator-facing response is signed by the miner's hotkey for the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

from bittensor.signing import WalletLike
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from byteleap import metrics
from byteleap.cloud.receipts import LeaseReceipt, ReceiptError, countersign_as_miner
from byteleap.errors import ByteleapError
from byteleap.miner.access import ExecSessions
from byteleap.miner.errors import (
    IllegalTransition,
    JobConflict,
    LeaseRefused,
    UnknownChallenge,
    UnknownJob,
    UnknownLease,
    UnknownWorker,
    WorkerLost,
    WorkerTimeout,
    WorkerUnavailable,
)
from byteleap.miner.links import WorkerLink
from byteleap.miner.networks import LeaseNetworks, mount_lease_networks
from byteleap.miner.node import MinerNode
from byteleap.net.access import ExecExited, ExecOutput
from byteleap.net.auth import AuthRejected, RequestVerifier, sign_response
from byteleap.net.messages import (
    MAX_HTTP_BODY_BYTES,
    ArtifactChunk,
    ArtifactRead,
    AuthNonce,
    ChallengeAborted,
    CommitmentReply,
    Committed,
    Enroll,
    Heartbeat,
    Hello,
    JobEnded,
    JobOutput,
    JobRefused,
    JobRequest,
    JobServing,
    LeaseExtension,
    LeaseProbed,
    LeaseRequest,
    MessageError,
    NetworkJoin,
    Pong,
    Refused,
    Revealed,
    StartChallenge,
    Welcome,
    WorkerList,
    WorkerState,
    parse_worker_message,
)
from byteleap.net.vm import VmReport
from byteleap.proof import RevealRequest

log = logging.getLogger(__name__)

STATUS: dict[type[ByteleapError], int] = {
    UnknownWorker: 404,
    UnknownChallenge: 404,
    UnknownJob: 404,
    UnknownLease: 404,
    LeaseRefused: 409,
    JobConflict: 409,
    WorkerUnavailable: 409,
    IllegalTransition: 409,
    WorkerLost: 410,
    WorkerTimeout: 504,
    MessageError: 422,
}
M = TypeVar("M", bound=BaseModel)
HELLO_TIMEOUT_S = 10.0
WS_CLOSE_SILENT = 4408  # missed heartbeats
MAX_LOG_WAIT_S = 25.0
MAX_PROBE_WAIT_S = 10.0
REVEAL_TIMEOUT_S = 30.0


@dataclass
class MinerApp:
    node: MinerNode
    wallet: WalletLike
    verifier: RequestVerifier

    async def authenticate(self, request: Request) -> tuple[str, bytes]:
        body = await request.body()
        if len(body) > MAX_HTTP_BODY_BYTES:
            raise MessageError("request body too large", reason="oversized")
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        caller = await self.verifier.verify(request.headers, body, method=request.method, path=path)
        return caller, body

    def reply(self, request: Request, caller: str, model: BaseModel) -> Response:
        body = model.model_dump_json().encode()
        headers = sign_response(
            self.wallet, method=request.method, path=request.url.path, body=body, caller=caller
        )
        return Response(body, media_type="application/json", headers=headers)


def _error_response(exc: ByteleapError) -> JSONResponse:
    if isinstance(exc, AuthRejected):
        status = exc.status
    elif isinstance(exc, MessageError) and exc.reason == "oversized":
        status = 413
    else:
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    return JSONResponse({"error": exc.reason, "detail": str(exc)}, status_code=status)


def create_app(miner: MinerApp) -> FastAPI:
    node = miner.node
    networks = LeaseNetworks(
        miner.wallet, node.hotkey, node.links, lambda worker_id: node.registry.get(worker_id).ip
    )
    node.leases.on_end.append(networks.lease_ended)
    sessions = ExecSessions()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        expiry = asyncio.create_task(node.expire_forever(), name="heartbeat-expiry")
        yield
        expiry.cancel()
        await networks.close()
        for worker_id in list(node.links):
            await node.detach(worker_id, "miner shutting down")
        node.jobs.artifacts.close()

    app = FastAPI(title="byteleap miner", lifespan=lifespan)
    mount_lease_networks(app, miner, networks)
    app.mount("/metrics", metrics.asgi_app())  # type: ignore[arg-type]

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        started = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        name = getattr(route, "path", "unmatched")
        metrics.MINER_REQUESTS.labels(name, str(response.status_code)).inc()
        metrics.MINER_REQUEST_SECONDS.labels(name).observe(time.perf_counter() - started)
        states = Counter(e.state.value for e in node.registry.entries())
        for state in WorkerState:
            metrics.WORKERS.labels(state.value).set(states.get(state.value, 0))
        return response

    @app.exception_handler(ByteleapError)
    async def _on_error(_: Request, exc: ByteleapError) -> JSONResponse:
        return _error_response(exc)

    @app.get("/v1/ping")
    async def ping(request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        return miner.reply(request, caller, Pong(miner_time=node.clock()))

    @app.get("/v1/workers")
    async def workers(request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        views = [entry.view() for entry in node.registry.entries() if not entry.revoked]
        return miner.reply(request, caller, WorkerList(miner_hotkey=node.hotkey, workers=views))

    @app.post("/v1/challenges")
    async def start_challenge(request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        start = _parse(StartChallenge, body)
        commitment = await node.challenge(start.worker_id, start.spec)
        return miner.reply(request, caller, CommitmentReply(commitment=commitment))

    @app.post("/v1/challenges/{challenge_id}/reveal")
    async def reveal(challenge_id: str, request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        reveal_request = _parse(RevealRequest, body)
        if reveal_request.challenge_id != challenge_id:
            raise MessageError("challenge id in path and body differ")
        answer = await node.reveal(reveal_request, REVEAL_TIMEOUT_S)
        return miner.reply(request, caller, answer)

    @app.post("/v1/jobs")
    async def submit_job(request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        return miner.reply(request, caller, node.submit_job(_parse(JobRequest, body), caller))

    @app.get("/v1/jobs/{job_id}")
    async def job_status(job_id: str, request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        return miner.reply(request, caller, node.jobs.get(job_id).status())

    @app.get("/v1/jobs/{job_id}/logs")
    async def job_logs(
        job_id: str, request: Request, after: int = 0, wait_s: float = 0
    ) -> Response:
        caller, _ = await miner.authenticate(request)
        job = node.jobs.get(job_id)
        if wait_s > 0 and job.next_seq <= after and not job.state.is_terminal:
            # Long-poll: answer as soon as there is something new, bounded in time.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.changed.wait(), min(wait_s, MAX_LOG_WAIT_S))
        return miner.reply(request, caller, node.jobs.logs(job_id, max(0, after)))

    @app.post("/v1/jobs/{job_id}/artifacts/read")
    async def read_artifact(job_id: str, request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        read = _parse(ArtifactRead, body)
        node.jobs.get(job_id)  # 404 unknown_job first
        piece = node.jobs.artifacts.read(job_id, read.path, read.offset, read.length)
        return miner.reply(request, caller, piece)

    @app.post("/v1/jobs/{job_id}/artifacts/drop")
    async def drop_artifacts(job_id: str, request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        job = node.jobs.get(job_id)
        node.jobs.artifacts.drop(job_id)
        return miner.reply(request, caller, job.status())

    @app.post("/v1/jobs/{job_id}/cancel")
    async def cancel_job(job_id: str, request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        return miner.reply(request, caller, node.cancel_job(job_id))

    @app.post("/v1/leases")
    async def start_lease(request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        return miner.reply(request, caller, node.start_lease(_parse(LeaseRequest, body), caller))

    @app.get("/v1/leases/{lease_id}")
    async def lease_status(lease_id: str, request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        return miner.reply(request, caller, node.leases.get(lease_id, caller).status())

    @app.get("/v1/leases/{lease_id}/alive")
    async def lease_alive(lease_id: str, request: Request, timeout_s: float = 5.0) -> Response:
        """Ask the leased worker whether the lease's workload is alive, within the timeout."""
        caller, _ = await miner.authenticate(request)
        lease = node.leases.get(lease_id, caller)
        wait = min(max(timeout_s, 0.05), MAX_PROBE_WAIT_S) if math.isfinite(timeout_s) else 5.0
        link = node.links.get(lease.request.worker_id)
        return miner.reply(request, caller, await node.leases.probes.ask(lease, link, wait))

    @app.post("/v1/leases/{lease_id}/extend")
    async def extend_lease(lease_id: str, request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        ends_at = _parse(LeaseExtension, body).ends_at
        return miner.reply(request, caller, node.leases.extend(lease_id, caller, ends_at).status())

    @app.post("/v1/leases/{lease_id}/release")
    async def release_lease(lease_id: str, request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        return miner.reply(request, caller, node.release_lease(lease_id, caller))

    @app.post("/v1/receipts/countersign")
    async def countersign(request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        receipt = _parse(LeaseReceipt, body)
        node.leases.check_receipt(receipt, gateway=caller, miner=node.hotkey)
        try:
            signed = countersign_as_miner(receipt, miner.wallet.hotkey)  # type: ignore[union-attr]
        except ReceiptError as exc:
            raise LeaseRefused(str(exc)) from None
        return miner.reply(request, caller, signed)

    @app.websocket("/v1/worker")
    async def worker_socket(socket: WebSocket) -> None:
        await serve_worker(node, socket, sessions)

    @app.websocket("/v1/leases/{lease_id}/exec")
    async def lease_exec(socket: WebSocket, lease_id: str) -> None:
        try:
            caller = await miner.verifier.verify(
                socket.headers, b"", method="GET", path=socket.url.path
            )
            lease = node.leases.get(lease_id, caller)
            link = node.links.get(lease.request.worker_id)
            if not lease.active or link is None:
                raise UnknownLease("the lease has ended or its worker is offline")
        except ByteleapError as exc:
            log.info("exec refused", extra={"lease": lease_id, "why": exc.reason})
            await socket.close(code=4403 if isinstance(exc, AuthRejected) else 4404)
            return
        await socket.accept()
        await sessions.relay(socket, lease, link)

    return app


def _parse(kind: type[M], body: bytes) -> M:
    try:
        return kind.model_validate_json(body)
    except ValueError as exc:
        raise MessageError(f"malformed {kind.__name__}: {str(exc).splitlines()[0]}") from None


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
        log.warning("worker refused", extra={"ip": ip, "why": reason})
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
    while True:
        raw = await socket.receive_text()
        try:
            message = parse_worker_message(raw)
        except MessageError as exc:
            # A bad message costs only itself; the link stays up.
            log.warning("bad worker message", extra={"worker": worker_id, "why": str(exc)})
            continue
        if isinstance(message, Heartbeat):
            if not node.heartbeat(worker_id):
                await socket.send_text(Refused(reason="revoked").model_dump_json())
                await socket.close(code=4403)
                return "revoked"
        elif isinstance(message, Committed | Revealed | ChallengeAborted):
            link.deliver(message)
        elif isinstance(message, ExecOutput | ExecExited):
            sessions.deliver(worker_id, message)
        elif isinstance(message, NetworkJoin):
            networks = getattr(socket.app.state, "lease_networks", None)
            if isinstance(networks, LeaseNetworks):
                networks.on_join(worker_id, message)
        elif isinstance(message, LeaseProbed):
            if not node.leases.probes.deliver(worker_id, message):
                log.warning("answer to no probe of this worker", extra={"worker": worker_id})
        elif isinstance(message, JobServing):
            node.on_serving(worker_id, message)
        elif isinstance(message, JobOutput | JobEnded | JobRefused | ArtifactChunk):
            if message.job_id not in {j.request.job_id for j in node.jobs.running_on(worker_id)}:
                # a worker may only speak for its own jobs
                log.warning("job message for another worker's job", extra={"worker": worker_id})
            elif isinstance(message, ArtifactChunk):
                node.jobs.artifact(message)
            else:
                node.on_job_message(message)
        elif isinstance(message, VmReport):
            if not node.leases.report_vm(worker_id, message, node.clock()):
                log.warning("vm report for another worker's lease", extra={"worker": worker_id})
        else:
            log.warning("unexpected worker message", extra={"worker": worker_id})


__all__ = ["MinerApp", "create_app"]
