"""The validator's (and gateway's) client for one miner: pinned TLS, signed both ways.

The miner's address and TLS key come from the metagraph; every request is signed
for the miner's hotkey and every response must be signed by it, so neither a man
in the middle nor a confused proxy can answer for the miner.
"""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import TypeVar

import httpx
import websockets
from bittensor.signing import WalletLike, resolve_signer
from pydantic import BaseModel, ValidationError

from byteleap.chain.port import NeuronInfo
from byteleap.errors import ByteleapError
from byteleap.net.auth import AuthRejected, sign_request, verify_response
from byteleap.net.messages import (
    ArtifactPiece,
    ArtifactRead,
    ChallengeBatch,
    ChallengeBatchReply,
    CheckpointSet,
    JobLogs,
    JobRequest,
    JobStatus,
    LeaseExtension,
    LeaseLiveness,
    LeaseNetwork,
    LeaseRequest,
    LeaseStatus,
    Pong,
    WorkerList,
)
from byteleap.net.receipts import LeaseReceipt
from byteleap.net.tls import pinned_context_for
from byteleap.net.wireguard.messages import SignedPeerSet
from byteleap.proof import Reveal, RevealRequest, reveal_size_limit
from byteleap.protocol.artifacts import CHUNK_BYTES
from byteleap.protocol.checkpoints import MAX_CHECKPOINT_BYTES
from byteleap.protocol.exec_frames import MAX_EXEC_FRAME

M = TypeVar("M", bound=BaseModel)


def parse_answer(answer: type[M], content: bytes) -> M:
    """A miner's verified answer as ``answer`` (one step of its own, which
    ``byteleap bench validator`` meters)."""
    return answer.model_validate_json(content)


class MinerCallError(ByteleapError):
    """A call to a miner failed; ``reason`` is the miner's error code or a transport one."""

    reason = "miner_call"

    def __init__(self, message: str, *, reason: str, status: int | None = None) -> None:
        super().__init__(message, reason=reason)
        self.status = status


class MinerClient:
    def __init__(self, wallet: WalletLike, miner: NeuronInfo, *, timeout_s: float = 30.0) -> None:
        if not (miner.axon_ip and miner.axon_port and miner.certificate):
            raise MinerCallError(
                f"miner uid {miner.uid} has no axon with a TLS key on chain", reason="no_axon"
            )
        self.wallet = wallet
        self.miner = miner
        self.self_hotkey = resolve_signer(wallet, role="hotkey").ss58_address
        self.base_url = f"https://{miner.axon_ip}:{miner.axon_port}"
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def __aenter__(self) -> MinerClient:
        assert self.miner.axon_ip and self.miner.axon_port and self.miner.certificate
        try:
            context = await asyncio.to_thread(
                pinned_context_for,
                self.miner.axon_ip,
                self.miner.axon_port,
                bytes.fromhex(self.miner.certificate),
            )
        except ByteleapError as exc:
            raise MinerCallError(str(exc), reason=exc.reason) from None
        self._tls = context
        self._client = httpx.AsyncClient(
            base_url=self.base_url, verify=context, timeout=self.timeout_s
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._client is not None:
            await self._client.aclose()

    async def _call(
        self,
        method: str,
        path: str,
        body: BaseModel | None,
        answer: type[M],
        timeout_s: float | None = None,
        max_bytes: int = 1 << 20,
    ) -> M:
        assert self._client is not None, "use MinerClient as an async context manager"
        raw = body.model_dump_json().encode() if body is not None else b""
        headers = sign_request(
            self.wallet, method=method, path=path, body=raw, receiver=self.miner.hotkey
        )
        headers["content-type"] = "application/json"
        try:
            response = await self._client.request(
                method, path, content=raw, headers=headers, timeout=timeout_s or self.timeout_s
            )
        except httpx.TimeoutException:
            raise MinerCallError(f"{method} {path} timed out", reason="timeout") from None
        except httpx.HTTPError as exc:
            raise MinerCallError(f"{method} {path}: {exc}", reason="unreachable") from None
        if len(response.content) > max_bytes:
            raise MinerCallError("miner answer too large", reason="oversized")
        if response.status_code != 200:
            raise self._error(response)
        try:
            verify_response(
                response.headers,
                response.content,
                method=method,
                path=path.split("?", 1)[0],  # the miner signs its route, not the query
                self_hotkey=self.self_hotkey,
                expected_sender=self.miner.hotkey,
            )
        except AuthRejected as exc:
            raise MinerCallError(str(exc), reason=exc.reason) from None
        try:
            return parse_answer(answer, response.content)
        except ValidationError as exc:
            raise MinerCallError(
                f"malformed answer: {exc.error_count()} error(s)", reason="malformed"
            ) from None

    @staticmethod
    def _error(response: httpx.Response) -> MinerCallError:
        try:
            data = response.json()
            reason, detail = str(data["error"]), str(data.get("detail", ""))
        except (ValueError, KeyError, TypeError):
            reason, detail = "http_error", response.text[:200]
        return MinerCallError(
            f"miner answered {response.status_code}: {detail}",
            reason=reason,
            status=response.status_code,
        )

    async def ping(self) -> float:
        """Round-trip time in seconds of a signed, verified request."""
        started = time.perf_counter()
        await self._call("GET", "/v1/ping", None, Pong)
        return time.perf_counter() - started

    async def workers(self) -> WorkerList:
        return await self._call("GET", "/v1/workers", None, WorkerList)

    async def start_batch(self, batch: ChallengeBatch) -> ChallengeBatchReply:
        """Have the miner start every challenge of ``batch`` at once."""
        reply = await self._call("POST", "/v1/challenge-batches", batch, ChallengeBatchReply)
        return _checked(reply, batch, 0)

    async def batch_results(
        self, batch: ChallengeBatch, *, seen: int, wait_s: float
    ) -> ChallengeBatchReply:
        """The batch's results from position ``seen`` on; the miner waits up to ``wait_s`` for
        one when it has none yet."""
        path = f"/v1/challenge-batches/{batch.batch_id}/results?seen={seen}&wait_s={wait_s:.3f}"
        reply = await self._call("GET", path, None, ChallengeBatchReply, wait_s + self.timeout_s)
        return _checked(reply, batch, seen)

    async def reveal(self, request: RevealRequest, n: int) -> Reveal:
        path = f"/v1/challenges/{request.challenge_id}/reveal"
        limit = reveal_size_limit(n, len(request.rows), len(request.cols))
        return await self._call("POST", path, request, Reveal, max_bytes=limit)

    async def submit_job(self, request: JobRequest) -> JobStatus:
        return await self._call("POST", "/v1/jobs", request, JobStatus)

    async def job_status(self, job_id: str) -> JobStatus:
        return await self._call("GET", f"/v1/jobs/{job_id}", None, JobStatus)

    async def job_logs(self, job_id: str, *, after: int = 0, wait_s: float = 0.0) -> JobLogs:
        """Log lines numbered ``after`` and up; with ``wait_s``, waits for new ones."""
        path = f"/v1/jobs/{job_id}/logs?after={after}&wait_s={wait_s:g}"
        return await self._call("GET", path, None, JobLogs, timeout_s=wait_s + self.timeout_s)

    async def read_artifact(
        self, job_id: str, path: str, *, offset: int = 0, length: int = CHUNK_BYTES
    ) -> ArtifactPiece:
        """Up to ``length`` bytes of an artifact the job's worker sent (base64 on the wire)."""
        body = ArtifactRead(path=path, offset=offset, length=length)
        limit = length * 4 // 3 + 4096 + 2 * len(path)
        url = f"/v1/jobs/{job_id}/artifacts/read"
        return await self._call("POST", url, body, ArtifactPiece, max_bytes=limit)

    async def read_checkpoint(self, job_id: str) -> CheckpointSet:
        """The latest complete checkpoint set the job's worker sent (checked whole on parse)."""
        limit = MAX_CHECKPOINT_BYTES * 4 // 3 + (64 << 10)
        url = f"/v1/jobs/{job_id}/checkpoint"
        return await self._call("GET", url, None, CheckpointSet, max_bytes=limit)

    async def drop_artifacts(self, job_id: str) -> JobStatus:
        """Let the miner forget the job's artifacts (the gateway has them now)."""
        return await self._call("POST", f"/v1/jobs/{job_id}/artifacts/drop", None, JobStatus)

    async def open_exec(self, lease_id: str) -> websockets.ClientConnection:
        """A WebSocket to a lease's exec session on the miner (frames: ``net.access``); the
        handshake is signed, the TLS key pinned."""
        assert self._client is not None, "use MinerClient as an async context manager"
        path = f"/v1/leases/{lease_id}/exec"
        headers = sign_request(
            self.wallet, method="GET", path=path, body=b"", receiver=self.miner.hotkey
        )
        url = f"wss://{self.miner.axon_ip}:{self.miner.axon_port}{path}"
        try:
            return await websockets.connect(
                url,
                ssl=self._tls,
                additional_headers=headers,
                max_size=MAX_EXEC_FRAME,
                open_timeout=self.timeout_s,
            )
        except websockets.InvalidStatus as exc:
            status = exc.response.status_code
            raise MinerCallError(
                f"miner refused the exec session ({status})", reason="exec_refused", status=status
            ) from None
        except (OSError, TimeoutError, websockets.WebSocketException) as exc:
            raise MinerCallError(f"exec session: {exc!r}", reason="unreachable") from None

    async def cancel_job(self, job_id: str) -> JobStatus:
        return await self._call("POST", f"/v1/jobs/{job_id}/cancel", None, JobStatus)

    async def start_lease(self, request: LeaseRequest) -> LeaseStatus:
        return await self._call("POST", "/v1/leases", request, LeaseStatus)

    async def lease_status(self, lease_id: str) -> LeaseStatus:
        return await self._call("GET", f"/v1/leases/{lease_id}", None, LeaseStatus)

    async def lease_alive(
        self, lease_id: str, *, timeout_s: float, nonce: str | None = None
    ) -> LeaseLiveness:
        """Have the miner ask the leased worker whether the lease's workload is alive; the
        worker signs its answer over ``nonce`` (``net.heartbeat``: check it, the miner's
        word alone proves nothing)."""
        path = f"/v1/leases/{lease_id}/alive?timeout_s={timeout_s:.3f}"
        if nonce is not None:
            path += f"&nonce={nonce}"
        return await self._call("GET", path, None, LeaseLiveness, timeout_s=timeout_s + 2.0)

    async def extend_lease(self, lease_id: str, ends_at: float) -> LeaseStatus:
        body = LeaseExtension(ends_at=ends_at)
        return await self._call("POST", f"/v1/leases/{lease_id}/extend", body, LeaseStatus)

    async def release_lease(self, lease_id: str) -> LeaseStatus:
        return await self._call("POST", f"/v1/leases/{lease_id}/release", None, LeaseStatus)

    async def attach_network(self, lease_id: str, network: LeaseNetwork) -> LeaseStatus:
        """Put the lease in its tenant's private network (the miner relays the join)."""
        return await self._call("POST", f"/v1/leases/{lease_id}/network", network, LeaseStatus)

    async def push_peer_set(self, lease_id: str, peer_set: SignedPeerSet) -> LeaseStatus:
        """Hand the lease's worker a gateway-signed peer set (the worker verifies it)."""
        path = f"/v1/leases/{lease_id}/network/peers"
        return await self._call("POST", path, peer_set, LeaseStatus)

    async def countersign(self, receipt: LeaseReceipt) -> LeaseReceipt:
        """The miner's countersignature on a gateway-signed receipt (refused: 409)."""
        return await self._call("POST", "/v1/receipts/countersign", receipt, LeaseReceipt)


def _checked(reply: ChallengeBatchReply, batch: ChallengeBatch, seen: int) -> ChallengeBatchReply:
    """A reply must answer this batch, from where we asked, with challenges it holds."""
    asked = {(i.worker_id, i.spec.challenge_id) for i in batch.items}
    answered = [(r.worker_id, r.challenge_id) for r in reply.results]
    if (
        reply.batch_id != batch.batch_id
        or reply.seen != seen
        or not set(answered) <= asked
        or len(set(answered)) != len(answered)
        or seen + len(answered) > len(asked)
        or (reply.done and seen + len(answered) != len(asked))
    ):
        raise MinerCallError("batch reply does not answer the batch", reason="malformed")
    return reply
