"""The gateway's REST app with its money routes over the real `GatewayService`, `Billing` and a
SQLite store, served by uvicorn on 127.0.0.1 in a thread of its own, so the blocking SDK and
the CLI can talk to it. The store is opened on that thread's loop; `run` runs a coroutine
there (to bill a job through the real dispatcher, say). The miners are `CpuSupply` doubles."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import uvicorn

from byteleap.config import GatewaySettings
from byteleap.gateway.billing import Billing
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.rest_billing import mount_billing
from byteleap.store import open_store, upgrade
from gateway.money_doubles import Clock, CpuSupply

T = TypeVar("T")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MoneyGateway:
    def __init__(
        self, root: Path, *, balance: float = 10.0, settings: GatewaySettings | None = None
    ) -> None:
        self.db_url = f"sqlite+aiosqlite:///{root / 'store.db'}"
        self.balance = balance
        self.settings = settings or GatewaySettings()
        self.clock = Clock(time.time())
        self.supply = CpuSupply()
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._port = port
        self.api_key = ""
        self.gateway: GatewayService | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failed: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __enter__
            self._failed = exc

    async def _serve(self) -> None:
        await upgrade(self.db_url)
        store = await open_store(self.db_url)
        try:
            self.gateway = GatewayService(store, self.supply, self.settings, clock=self.clock)
            app = create_rest_app(self.gateway)
            mount_billing(app, Billing(store, self.supply, self.settings, clock=self.clock))
            self.api_key = await create_tenant_with_key(store, "alice", balance=self.balance)
            config = uvicorn.Config(
                app, host="127.0.0.1", port=self._port, log_level="error", lifespan="off"
            )
            self._server = uvicorn.Server(config)
            self._loop = asyncio.get_running_loop()
            await self._server.serve()
        finally:
            await store.close()

    def __enter__(self) -> MoneyGateway:
        self._thread.start()
        deadline = time.monotonic() + 20
        while self._server is None or not self._server.started:
            assert self._failed is None, f"gateway failed: {self._failed!r}"
            assert self._thread.is_alive(), "gateway thread died"
            assert time.monotonic() < deadline, "gateway did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.should_exit = True
        self._thread.join(10)
        assert not self._thread.is_alive(), "gateway did not stop"

    def run(self, work: Callable[[], Awaitable[T]]) -> T:
        """``await work()`` on the gateway's loop; its result."""
        assert self._loop is not None

        async def call() -> T:
            return await work()

        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(30)

    def bill_a_job(self, job_id: str, ran_s: float) -> None:
        """Dispatch the queued jobs, and have ``job_id`` end after ``ran_s`` (signed)."""
        gateway = self.gateway
        assert gateway is not None
        self.run(gateway.dispatcher.dispatch_once)
        self.supply.miner.ended[f"{job_id}-a1"] = ran_s
        self.clock.now += ran_s + 1
        self.run(gateway.dispatcher.monitor_once)
