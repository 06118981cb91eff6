"""What the service routes (``invoke`` and the OpenAI API) share: the customer's request as
the proxy takes it, and the replica's answer passed on as a stream."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from byteleap.gateway.errors import PayloadTooLarge
from byteleap.gateway.proxy import ProxyRequest, ProxyResponse
from byteleap.gateway.rest_common import ErrorBody

INVOKE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The replica's answer: its status, headers and body, as it sent them"},
    502: {"model": ErrorBody, "description": "No replica could be reached"},
    504: {"model": ErrorBody, "description": "The replica did not answer in time"},
}


async def proxy_request(request: Request, path: str, max_body: int) -> ProxyRequest:
    """The request to forward; its body is read whole first (it is bounded, a stream is not
    worth its complexity there)."""
    body = await request.body()
    if len(body) > max_body:
        raise PayloadTooLarge(f"a request to a service may carry at most {max_body} bytes")
    return ProxyRequest(
        method=request.method,
        path=path,
        query=request.url.query,
        headers=list(request.headers.items()),
        body=body,
    )


class ReplicaStream(StreamingResponse):
    """The replica's answer, passed on chunk by chunk as it arrives; the exchange with the
    replica is released however the response ends (a client gone mid-stream included)."""

    def __init__(self, answer: ProxyResponse) -> None:
        super().__init__(answer.body(), status_code=answer.status)
        self._answer = answer
        for name, value in answer.headers:
            self.headers.append(name, value)
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            # a reverse proxy in front (nginx) would otherwise hold events back
            self.headers["x-accel-buffering"] = "no"
            self.headers.setdefault("cache-control", "no-cache")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._answer.close()
