"""How uvicorn serves the customer API: bounds on what one connection may hold.

uvicorn (h11) bounds a request's head in size (``max_header_bytes``), idle keep-alive
connections in time (``keep_alive_s``) and connections in number (``max_connections``, past
which new requests get 503) — but not how long a request's head may take to arrive: a client
trickling its headers would hold its connection, and with enough of them every slot up to
``max_connections``. `HeadDeadline` closes a connection whose next request head has not
fully arrived ``header_timeout_s`` after the connection opened or its last answer ended.
(How long a body may take is the `RequestGuard`'s, request_guard.py.)
"""

from __future__ import annotations

import asyncio
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from byteleap.config import GatewayHttpSettings


class HeadDeadline(H11Protocol):
    """uvicorn's h11 protocol with a deadline for each request's head (``header_timeout_s``,
    set on the subclass `server_config` makes)."""

    header_timeout_s = 10.0
    _head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._arm()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._disarm()  # the connection is the WebSocket's from now on
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._head_timer = self.loop.call_later(self.header_timeout_s, self._head_late)

    def _disarm(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        # IDLE: h11 has not seen a whole request head since the timer was set
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def server_config(
    app: Any, host: str, port: int, http: GatewayHttpSettings, **tls: Any
) -> uvicorn.Config:
    """uvicorn's config for the customer API with ``http``'s bounds (``tls``: uvicorn's
    ``ssl_certfile`` / ``ssl_keyfile``, none for plain HTTP)."""
    protocol = type("HeadDeadline", (HeadDeadline,), {"header_timeout_s": http.header_timeout_s})
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=protocol,
        log_level="warning",
        timeout_graceful_shutdown=5,
        limit_concurrency=http.max_connections,
        h11_max_incomplete_event_size=http.max_header_bytes,
        timeout_keep_alive=http.keep_alive_s,
        **tls,
    )
