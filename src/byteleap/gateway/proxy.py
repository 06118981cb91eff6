"""Forwarding one customer request to one replica over plain HTTP, bounded in time and size.

The answer is streamed: `forward` returns once its headers came (within ``timeout_s``), and
its body is read chunk by chunk as the client takes it, each wait for the next chunk again
bounded by ``timeout_s`` (an idle bound: a stream that keeps sending is never cut by time);
the size bound ends a stream when it is passed.

The tenant's API key and hop-by-hop headers never reach the replica. Failures are sorted by
whether the replica can have seen the request: a refused or failed connection
(`ReplicaRefused`) is safe to send elsewhere; a failure after sending (`ReplicaBroken`) is
safe to repeat only for idempotent methods; a timeout or an oversized answer ends the
request (`ReplicaTimeout` 504, `ReplicaUnreachable` 502).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import httpx

from byteleap.gateway.errors import CloudError

log = logging.getLogger(__name__)

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


@dataclass(slots=True)
class ProxyResponse:
    """A replica's answer whose status and headers have arrived; its body is read as the
    client takes it (`body`), and the exchange is released when it ends (`close`)."""

    status: int
    headers: list[tuple[str, str]]
    seconds: float  # to the replica's headers: a long stream is not a slow replica
    _response: httpx.Response
    _max_bytes: int
    _endpoint: str
    # Called once when the exchange is released (the desk counts the replica's requests in
    # flight until then).
    on_close: list[Callable[[], None]] = field(default_factory=list)
    _closed: bool = False

    async def body(self) -> AsyncIterator[bytes]:
        """The body's chunks as they come; each is read only once the one before it was taken
        (backpressure). It ends early, logged, where the replica broke the exchange or went
        past the size bound: the status has been sent, so nothing else can say so."""
        size = 0
        try:
            async for chunk in self._response.aiter_raw():
                size += len(chunk)
                if size > self._max_bytes:
                    log.warning(
                        "replica %s answer cut at %d bytes", self._endpoint, self._max_bytes
                    )
                    if keep := len(chunk) - (size - self._max_bytes):
                        yield chunk[:keep]
                    return
                yield chunk
        except httpx.HTTPError as exc:
            log.warning("replica %s broke its answer off: %r", self._endpoint, exc)
        finally:
            await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await self._response.aclose()
        finally:
            for done in self.on_close:
                done()


def forwardable(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP]


class ReplicaProxy:
    """``timeout_s`` bounds the wait for the replica's headers and then each wait for the next
    chunk, never the whole answer: a stream that keeps sending is not cut."""

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
        """Send the request (its body is bounded and buffered already) and wait for the
        answer's headers; the caller reads the body and must close what it gets."""
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
            async with asyncio.timeout(self.timeout_s):  # the first byte, all tries included
                response = await self._client.send(outgoing, stream=True)
        except httpx.ConnectError as exc:
            raise ReplicaRefused(f"replica {endpoint} refused the connection: {exc}") from None
        except (httpx.TimeoutException, TimeoutError):
            raise ReplicaTimeout(f"replica {endpoint} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise ReplicaBroken(f"replica {endpoint} broke the exchange: {exc!r}") from None
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_response_bytes:
            await response.aclose()
            raise ReplicaUnreachable(
                f"the replica's answer exceeds {self.max_response_bytes} bytes"
            )
        return ProxyResponse(
            status=response.status_code,
            headers=forwardable(list(response.headers.multi_items())),
            seconds=time.perf_counter() - started,
            _response=response,
            _max_bytes=self.max_response_bytes,
            _endpoint=endpoint,
        )

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
