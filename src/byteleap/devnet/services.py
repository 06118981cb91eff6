"""The devnet's service step: deploy a small HTTP service, load it, watch it scale out and in."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from byteleap.devnet.state import DevnetError, DevnetState, check_children
from byteleap.devnet.summary import ServiceSummary
from byteleap.protocol.service_spec import ServiceView
from byteleap.sdk import AsyncClient
from byteleap.sdk.errors import SdkError

# The replica: stdlib only, serves on $PORT; /slow holds a request so that load builds up.
SERVER = """\
import json, os, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        url = urlparse(self.path)
        if url.path == "/slow":
            time.sleep(min(int(parse_qs(url.query).get("ms", ["0"])[0]), 2000) / 1000)
        body = json.dumps({"pid": os.getpid(), "path": url.path}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.daemon_threads = True
server.serve_forever()
"""

CLIENTS = 6
SCALE_OUT_TO = 3


@dataclass
class _Load:
    ok: int = 0
    failed: int = 0
    replicas_max: int = 0


async def step_service(state: DevnetState) -> None:
    """A customer deploys a service; load makes it scale out, quiet makes it scale in."""
    spec = {
        "name": "devnet-hello",
        "command": [sys.executable, "server.py"],
        "inputs": {"server.py": {"content": SERVER}},
        "autoscale": {
            "min_replicas": 1,
            "max_replicas": SCALE_OUT_TO,
            "target_in_flight": 1,
            "scale_out_cooldown_s": 0,
            "scale_in_cooldown_s": 3,
        },
        "health": {"path": "/health", "start_timeout_s": 60},
    }
    load = _Load()
    async with AsyncClient(state.gateway_url, state.api_key, timeout=30) as client:
        service = await client.create_service(spec)
        await wait_for_service(
            state, client, service.id, "ready replica", lambda v: v.ready_replicas >= 1
        )
        stop = asyncio.Event()
        clients = [
            asyncio.create_task(_client(client, service.id, load, stop)) for _ in range(CLIENTS)
        ]
        try:
            view = await wait_for_service(
                state,
                client,
                service.id,
                f"scale out to {SCALE_OUT_TO} under load",
                lambda v: v.ready_replicas >= SCALE_OUT_TO,
                load=load,
            )
        finally:
            stop.set()
            await asyncio.gather(*clients)
        view = await wait_for_service(
            state, client, service.id, "scale in once quiet", lambda v: v.desired_replicas == 1
        )
        await client.delete_service(service.id)
        deleted = await wait_for_service(
            state, client, service.id, "stop after delete", lambda v: v.state.is_terminal
        )
        state.summary.services.append(
            ServiceSummary(
                id=service.id,
                replicas_max=load.replicas_max,
                replicas_after=view.desired_replicas,
                requests_ok=load.ok,
                requests_failed=load.failed,
                cost=round(deleted.cost, 6),
            )
        )


async def _client(client: AsyncClient, service_id: str, load: _Load, stop: asyncio.Event) -> None:
    while not stop.is_set():
        try:
            response = await client.invoke(service_id, "GET", "slow", params={"ms": 300})
        except (httpx.HTTPError, SdkError):
            load.failed += 1
            await asyncio.sleep(0.1)
            continue
        if response.status_code == 200:
            load.ok += 1
        else:
            load.failed += 1


async def wait_for_service(
    state: DevnetState,
    client: AsyncClient,
    service_id: str,
    what: str,
    done: Callable[[ServiceView], bool],
    *,
    load: _Load | None = None,
    timeout_s: float = 60.0,
) -> ServiceView:
    deadline = time.monotonic() + timeout_s
    while True:
        view = await client.get_service(service_id)
        if load is not None:
            load.replicas_max = max(load.replicas_max, view.ready_replicas)
        if done(view):
            return view
        check_children(state)
        if time.monotonic() > deadline:
            raise DevnetError(
                f"service {service_id}: no {what} in {timeout_s:.0f}s "
                f"({view.ready_replicas} ready of {view.desired_replicas} desired)"
            )
        detail = f"{view.ready_replicas} ready of {view.desired_replicas}"
        if load is not None:
            detail += f", {load.ok} requests served"
        state.progress(f"service: {detail}")
        await asyncio.sleep(0.5)
