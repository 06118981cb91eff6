"""What a customer's HTTP request must pass before the gateway reads a byte of its body.

- **The key first.** Every route of the customer API is a `TenantFirstRoute`: one that takes
  a `TenantDep` checks the ``Authorization: Bearer`` key from the headers before its handler
  reads the body (FastAPI parses the body before it resolves dependencies). A missing,
  unknown or revoked key is answered 401 and the connection closed, the body never read; the
  tenant found is handed to the dependency, which does not look it up again.
- **Bounded bodies.** `RequestGuard`, a pure ASGI middleware (it never buffers a body, unlike
  Starlette's ``BaseHTTPMiddleware``), answers 413 to a declared ``Content-Length`` over the
  route's limit (`set_body_limit`, else the gateway's) before reading, and counts a chunked
  or lying body as the app reads it, cutting it off at the limit (413).
- **A deadline for the body.** The whole body must arrive within ``body_timeout_s`` of the
  request's start, else 408: a client trickling its body holds a connection that long at
  most.

The 413 and 408 raised while the app reads are ``HTTPException``s, so FastAPI passes them on
to the app's error handlers instead of calling them a malformed body; each closes the
connection, as the body's rest is not read.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byteleap.gateway.errors import CloudError
from byteleap.gateway.port import CloudService
from byteleap.gateway.rest_common import TENANT_STATE, bearer_key, error_response, needs_tenant

CLOSE = {"Connection": "close"}


class TenantFirstRoute(APIRoute):
    """An `APIRoute` that, when it takes a `TenantDep`, authenticates before its handler
    reads the body (pass it as an ``APIRouter``'s ``route_class``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        if not needs_tenant(self):
            return handler

        async def authenticated_first(request: Request) -> Response:
            service: CloudService = request.app.state.cloud_service
            try:
                tenant = await service.authenticate(bearer_key(request.headers))
            except CloudError as exc:  # Unauthorized, or a service that says why not
                response = error_response(exc.status, exc.reason, str(exc))
                response.headers.update(CLOSE)  # what the client still sends is not read
                return response
            setattr(request.state, TENANT_STATE, tenant)
            return await handler(request)

        return authenticated_first


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes", headers=CLOSE)


class BodyTimedOut(HTTPException):
    def __init__(self, timeout_s: float) -> None:
        super().__init__(408, f"request body not received within {timeout_s:g}s", headers=CLOSE)


class RequestGuard:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_timeout_s: float,
        route_limits: list[tuple[re.Pattern[str], int]],
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.route_limits = route_limits  # read per request: later `set_body_limit`s count

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(str(scope.get("path", "")))
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            await _answer(scope, send, BodyTooLarge(limit))
            return
        body = _LimitedBody(receive, limit, self.body_timeout_s)
        try:
            await self.app(scope, body.receive, _noting_answer(send, body))
        except (BodyTooLarge, BodyTimedOut) as exc:  # raised where no handler answered it
            if body.answered:
                raise
            await _answer(scope, send, exc)

    def _limit(self, path: str) -> int:
        for pattern, limit in self.route_limits:
            if pattern.match(path):
                return limit
        return self.max_body_bytes


def guard_requests(app: FastAPI, *, max_body_bytes: int, body_timeout_s: float) -> None:
    """Put a `RequestGuard` in front of ``app`` (routes may then `set_body_limit`)."""
    app.state.body_limits = []
    app.add_middleware(
        RequestGuard,
        max_body_bytes=max_body_bytes,
        body_timeout_s=body_timeout_s,
        route_limits=app.state.body_limits,
    )


def set_body_limit(app: FastAPI, route_path: str, max_bytes: int) -> None:
    """Bodies sent to the route ``route_path`` (its template, e.g. ``/v1/x/{id}``) may carry
    ``max_bytes``, not the gateway's limit."""
    pattern, _, _ = compile_path(route_path)
    app.state.body_limits.append((pattern, max_bytes))


class _LimitedBody:
    """The app's ``receive``: counts the body's bytes and holds it to a deadline."""

    def __init__(self, receive: Receive, limit: int, timeout_s: float) -> None:
        self._receive = receive
        self.limit = limit
        self.timeout_s = timeout_s
        self.deadline = asyncio.get_running_loop().time() + timeout_s
        self.size = 0
        self.complete = False  # the last body message came: what follows is a disconnect
        self.answered = False  # the app began its answer

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()  # a streamed answer waits here for the disconnect
        left = self.deadline - asyncio.get_running_loop().time()
        try:
            message = await asyncio.wait_for(self._receive(), max(left, 0.0))
        except TimeoutError:
            raise BodyTimedOut(self.timeout_s) from None
        if message["type"] != "http.request":
            self.complete = True
            return message
        self.size += len(message.get("body", b""))
        if self.size > self.limit:
            raise BodyTooLarge(self.limit)
        self.complete = not message.get("more_body", False)
        return message


def _noting_answer(send: Send, body: _LimitedBody) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            body.answered = True
        await send(message)

    return sending


async def _answer(scope: Scope, send: Send, error: BodyTooLarge | BodyTimedOut) -> None:
    """Answer ``error`` without reading any more of the body, and close the connection."""
    reason = "payload_too_large" if error.status_code == 413 else "request_timeout"
    response = error_response(error.status_code, reason, error.detail)
    response.headers.update(CLOSE)

    async def nothing_more() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, nothing_more, send)


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value)
            return None
    return None
