"""The REST app over an `InMemoryCloudService`, served for real by uvicorn on 127.0.0.1 in a
thread; `call` runs a service control (``finish``, ``append_log`` …) on the server's loop."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import uvicorn

from byteleap.gateway.memory import InMemoryCloudService
from byteleap.gateway.rest import create_rest_app

T = TypeVar("T")

ALICE_KEY = "alice-key-0123456789"
BOB_KEY = "bob-key-0123456789"


def tenants(capacity: int = 0) -> InMemoryCloudService:
    """Alice and Bob, and ``capacity`` free workers for leases."""
    service = InMemoryCloudService(capacity=capacity)
    service.add_tenant("alice", ALICE_KEY)
    service.add_tenant("bob", BOB_KEY)
    return service


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LiveGateway:
    def __init__(self, service: InMemoryCloudService, **app_options: Any) -> None:
        self.service = service
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        config = uvicorn.Config(
            create_rest_app(service, **app_options),
            host="127.0.0.1",
            port=port,
            log_level="error",
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        self.server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.server.serve()

    def __enter__(self) -> LiveGateway:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self._thread.is_alive(), "gateway thread died"
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self._thread.join(10)
        assert not self._thread.is_alive(), "gateway did not stop"

    def call(self, control: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``control(*args, **kwargs)`` on the server's event loop and return its result."""
        assert self._loop is not None

        async def run() -> T:
            return control(*args, **kwargs)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(10)
