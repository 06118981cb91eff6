"""Forwarding one customer request to one replica over plain HTTP, bounded in time and size.

The tenant's API key and hop-by-hop headers never reach the replica. Failures are sorted by
whether the replica can have seen the request: a refused or failed connection
(`ReplicaRefused`) is safe to send elsewhere; a failure after sending (`ReplicaBroken`) is
safe to repeat only for idempotent methods; a timeout or an oversized answer ends the
request (`ReplicaTimeout` 504, `ReplicaUnreachable` 502).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from byteleap.gateway.errors import CloudError

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "authorization",  # the tenant's API key is the gateway's business only
    }
)
IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


class ReplicaUnreachable(CloudError):
    reason = "bad_gateway"
    status = 502
    grpc_code = "UNAVAILABLE"


class ReplicaTimeout(CloudError):
    reason = "gateway_timeout"
    status = 504
    grpc_code = "DEADLINE_EXCEEDED"


class ReplicaRefused(ReplicaUnreachable):
    """The connection failed: the replica never saw the request."""


class ReplicaBroken(ReplicaUnreachable):
    """The exchange broke after the request went out."""


@dataclass(frozen=True, slots=True)
class ProxyRequest:
    method: str
    path: str  # after /invoke, starting with "/"
    query: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True, slots=True)
class ProxyResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    seconds: float


def forwardable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


class ReplicaProxy:
    def __init__(self, *, timeout_s: float, max_response_bytes: int, health_timeout_s: float):
        self.timeout_s = timeout_s
        self.max_response_bytes = max_response_bytes
        self.health_timeout_s = health_timeout_s
        # trust_env off: replicas are reached directly, never through an HTTP(S)_PROXY
        self._client = httpx.AsyncClient(
            timeout=timeout_s,
            trust_env=False,
            limits=httpx.Limits(max_connections=512, max_keepalive_connections=64),
        )

    async def forward(self, endpoint: str, request: ProxyRequest) -> ProxyResponse:
        url = f"http://{endpoint}{request.path}" + (f"?{request.query}" if request.query else "")
        started = time.perf_counter()
        try:
            outgoing = self._client.build_request(
                request.method,
                url,
                headers=forwardable(request.headers),
                content=request.body,
                timeout=self.timeout_s,
            )
            response = await self._client.send(outgoing, stream=True)
            try:
                body = await self._read_bounded(response)
            finally:
                await response.aclose()
        except httpx.ConnectError as exc:
            raise ReplicaRefused(f"replica {endpoint} refused the connection: {exc}") from None
        except httpx.TimeoutException:
            raise ReplicaTimeout(f"replica {endpoint} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ReplicaBroken(f"replica {endpoint} broke the exchange: {exc!r}") from None
        return ProxyResponse(
            status=response.status_code,
            headers=forwardable(list(response.headers.multi_items())),
            body=body,
            seconds=time.perf_counter() - started,
        )

    async def _read_bounded(self, response: httpx.Response) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > self.max_response_bytes:
                raise ReplicaUnreachable(
                    f"the replica's answer exceeds {self.max_response_bytes} bytes"
                )
            chunks.append(chunk)
        return b"".join(chunks)

    async def probe(self, endpoint: str, path: str) -> bool:
        """Whether the replica answers ``path`` with a 2xx in time."""
        try:
            response = await self._client.get(
                f"http://{endpoint}{path}", timeout=self.health_timeout_s
            )
        except httpx.HTTPError:
            return False
        return 200 <= response.status_code < 300

    async def close(self) -> None:
        await self._client.aclose()
