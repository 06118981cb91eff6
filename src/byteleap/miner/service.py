"""The miner's HTTPS app: the validator API (signed both ways) and the worker WebSocket.

Handlers parse a typed body, call one `MinerNode` method and map its errors;
every validator-facing response is signed by the miner's hotkey for the caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, Response

from byteleap import metrics
from byteleap.errors import ByteleapError
from byteleap.miner.access import ExecSessions
from byteleap.miner.artifact_spool import UnknownArtifact
from byteleap.miner.errors import (
    LeaseRefused,
    UnknownLease,
)
from byteleap.miner.jobs import MAX_LOG_PAGE_LINES
from byteleap.miner.networks import LeaseNetworks, mount_lease_networks
from byteleap.miner.signed_http import MinerApp, error_response, parse_body
from byteleap.miner.worker_socket import serve_worker
from byteleap.net.auth import AuthRejected
from byteleap.net.messages import (
    ArtifactRead,
    ChallengeBatch,
    JobRequest,
    LeaseExtension,
    LeaseRequest,
    MessageError,
    Pong,
    WorkerList,
    WorkerState,
)
from byteleap.net.receipts import LeaseReceipt, ReceiptError, countersign_as_miner
from byteleap.proof import RevealRequest

log = logging.getLogger(__name__)

HELLO_TIMEOUT_S = 10.0
WS_CLOSE_SILENT = 4408  # missed heartbeats
MAX_LOG_WAIT_S = 25.0
MAX_PROBE_WAIT_S = 10.0
REVEAL_TIMEOUT_S = 30.0
# A results poll returns at once when there is news, else after at most this.
MAX_RESULTS_WAIT_S = 20.0
_NONCE = re.compile(r"[0-9a-f]{64}")


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
        node.batches.close()
        await networks.close()
        for worker_id in list(node.links):
            await node.detach(worker_id, "miner shutting down")
        node.jobs.artifacts.close()
        node.jobs.close()

    app = FastAPI(title="byteleap miner", lifespan=lifespan)
    mount_lease_networks(app, miner, networks)

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
        return error_response(exc)

    @app.get("/v1/ping")
    async def ping(request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        return miner.reply(request, caller, Pong(miner_time=node.clock()))

    @app.get("/v1/workers")
    async def workers(request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        views = [entry.view() for entry in node.registry.entries() if not entry.revoked]
        return miner.reply(request, caller, WorkerList(miner_hotkey=node.hotkey, workers=views))

    @app.post("/v1/challenge-batches")
    async def start_batch(request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        return miner.reply(
            request, caller, node.batches.start(caller, parse_body(ChallengeBatch, body))
        )

    @app.get("/v1/challenge-batches/{batch_id}/results")
    async def batch_results(
        batch_id: str, request: Request, seen: int = 0, wait_s: float = 0.0
    ) -> Response:
        caller, _ = await miner.authenticate(request)
        wait = min(max(wait_s, 0.0), MAX_RESULTS_WAIT_S)
        reply = await node.batches.results(caller, batch_id, seen=max(seen, 0), wait_s=wait)
        return miner.reply(request, caller, reply)

    @app.post("/v1/challenges/{challenge_id}/reveal")
    async def reveal(challenge_id: str, request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        reveal_request = parse_body(RevealRequest, body)
        if reveal_request.challenge_id != challenge_id:
            raise MessageError("challenge id in path and body differ")
        answer = await node.reveal(reveal_request, REVEAL_TIMEOUT_S)
        return miner.reply(request, caller, answer)

    @app.post("/v1/jobs")
    async def submit_job(request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        return miner.reply(request, caller, node.submit_job(parse_body(JobRequest, body), caller))

    @app.get("/v1/jobs/{job_id}")
    async def job_status(job_id: str, request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        return miner.reply(request, caller, node.jobs.get(job_id).status())

    @app.get("/v1/jobs/{job_id}/logs")
    async def job_logs(
        job_id: str,
        request: Request,
        after: int = 0,
        wait_s: float = 0,
        limit: int = MAX_LOG_PAGE_LINES,
    ) -> Response:
        """A page of the job's log from line ``after`` (bounded: ``JobLogs``); with
        ``wait_s``, waits that long at most for a line when there is none yet."""
        caller, _ = await miner.authenticate(request)
        job = node.jobs.get(job_id)
        if wait_s > 0 and job.next_seq <= after and not job.log_done:
            # Long-poll: answer as soon as there is something new, bounded in time.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(job.changed.wait(), min(wait_s, MAX_LOG_WAIT_S))
        page = node.jobs.logs(job_id, max(0, after), max(1, limit))
        return miner.reply(request, caller, page)

    @app.post("/v1/jobs/{job_id}/artifacts/read")
    async def read_artifact(job_id: str, request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        read = parse_body(ArtifactRead, body)
        node.jobs.get(job_id)  # 404 unknown_job first
        piece = node.jobs.artifacts.read(job_id, read.path, read.offset, read.length)
        return miner.reply(request, caller, piece)

    @app.get("/v1/jobs/{job_id}/checkpoint")
    async def read_checkpoint(job_id: str, request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        checkpoint = node.jobs.get(job_id).checkpoint
        if checkpoint is None:
            raise UnknownArtifact(f"job {job_id} has sent no checkpoint")
        return miner.reply(request, caller, checkpoint)

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
        return miner.reply(
            request, caller, node.start_lease(parse_body(LeaseRequest, body), caller)
        )

    @app.get("/v1/leases/{lease_id}")
    async def lease_status(lease_id: str, request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        return miner.reply(request, caller, node.leases.get(lease_id, caller).status())

    @app.get("/v1/leases/{lease_id}/alive")
    async def lease_alive(
        lease_id: str, request: Request, timeout_s: float = 5.0, nonce: str | None = None
    ) -> Response:
        """Ask the leased worker whether the lease's workload is alive, within the timeout;
        it signs its answer over the caller's ``nonce`` (``net.heartbeat``)."""
        caller, _ = await miner.authenticate(request)
        lease = node.leases.get(lease_id, caller)
        if nonce is not None and not _NONCE.fullmatch(nonce):
            raise MessageError("a probe nonce is 64 lowercase hex characters")
        wait = min(max(timeout_s, 0.05), MAX_PROBE_WAIT_S) if math.isfinite(timeout_s) else 5.0
        link = node.links.get(lease.request.worker_id)
        liveness = await node.leases.probes.ask(lease, link, wait, nonce)
        return miner.reply(request, caller, liveness)

    @app.post("/v1/leases/{lease_id}/extend")
    async def extend_lease(lease_id: str, request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        ends_at = parse_body(LeaseExtension, body).ends_at
        return miner.reply(request, caller, node.leases.extend(lease_id, caller, ends_at).status())

    @app.post("/v1/leases/{lease_id}/release")
    async def release_lease(lease_id: str, request: Request) -> Response:
        caller, _ = await miner.authenticate(request)
        return miner.reply(request, caller, node.release_lease(lease_id, caller))

    @app.post("/v1/receipts/countersign")
    async def countersign(request: Request) -> Response:
        caller, body = await miner.authenticate(request)
        receipt = parse_body(LeaseReceipt, body)
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


__all__ = ["MinerApp", "create_app"]
