"""ASGI middleware counting the gateway's requests and timing them, by route template.

Labelled by the matched route's template (``/v1/jobs/{job_id}``), never the raw path, so
ids do not blow up the label set; anything unmatched is ``unmatched``. A streamed answer
(SSE logs) is timed to its end.
"""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byteleap import metrics


class RequestMetrics:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # an app that raises before answering is a server error

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", None) or _mount_of(scope)
            method = str(scope.get("method", ""))
            metrics.GATEWAY_REQUESTS.labels(method, route, str(status)).inc()
            metrics.GATEWAY_REQUEST_SECONDS.labels(method, route).observe(
                time.perf_counter() - started
            )


def _mount_of(scope: Scope) -> str:
    path = str(scope.get("path", ""))
    return "/metrics" if path.startswith("/metrics") else "unmatched"
