"""The key before the body: every authenticated route refuses a missing or wrong key (401,
connection closed) without reading a byte of the body; a declared body over the route's limit
is 413 unread; a body slower than the deadline is 408, a request head slower than its own
deadline loses the connection — in-process and over a real server."""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import uvicorn

from byteleap.config import GatewayHttpSettings
from byteleap.gateway.http_server import server_config
from byteleap.gateway.memory import InMemoryCloudService
from byteleap.gateway.port import Tenant
from byteleap.gateway.request_guard import set_body_limit
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.rest_common import DEFAULT_MAX_BODY_BYTES, TenantDep
from byteleap.gateway.rest_services import mount_services
from gateway.live import ALICE_KEY, LiveGateway, tenants
from gateway.services_desk import Desk, open_desk

pytestmark = pytest.mark.adversarial

LIMIT = 4096
BIG = 100 << 20  # a body no route takes: it must never be read


class _Unread:
    """An ASGI ``receive`` that records whether the app asked for the body at all."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> dict[str, Any]:
        self.calls += 1
        return {"type": "http.request", "body": b"{}", "more_body": True}


async def _call(
    app: Any, method: str, path: str, headers: dict[str, str]
) -> tuple[int, dict[str, str], _Unread]:
    """Run one request through the app's ASGI interface; (status, headers, the receive)."""
    receive, sent = _Unread(), []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": method, "path": path, "raw_path": path.encode(),
        "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
        "server": ("gw", 80), "client": ("127.0.0.1", 1), "asgi": {"version": "3.0"},
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }  # fmt: skip
    await asyncio.wait_for(app(scope, receive, send), 10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    answer = {k.decode(): v.decode() for k, v in start["headers"]}
    return int(start["status"]), answer, receive


@pytest.fixture
async def desk(sqlite_url: str) -> AsyncIterator[Desk]:
    opened = await open_desk(sqlite_url)
    yield opened
    await opened.close()


def _authenticated_operations(app: Any) -> list[tuple[str, str]]:
    """(method, path with every parameter filled) of each operation that needs a key."""
    spec = app.openapi()
    found = []
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if operation.get("security"):
                found.append((method.upper(), re.sub(r"\{[^}]+\}", "x", path)))
    return found


@pytest.mark.parametrize(
    "auth", [None, "Bearer wrong-key", f"Basic {ALICE_KEY}"], ids=["missing", "wrong", "basic"]
)
async def test_every_authenticated_route_refuses_a_keyless_body_unread(
    desk: Desk, auth: str | None
) -> None:
    app = create_rest_app(desk.tenants)
    mount_services(app, desk.desk)
    operations = _authenticated_operations(app)
    assert ("POST", "/v1/jobs") in operations and ("POST", "/v1/services/x/invoke/x") in operations
    headers = {"content-type": "application/json", "content-length": str(LIMIT)}
    if auth is not None:
        headers["authorization"] = auth
    for method, path in operations:
        status, answer, receive = await _call(app, method, path, headers)
        assert (status, receive.calls) == (401, 0), (method, path)
        assert answer["connection"] == "close"


async def test_a_declared_body_over_the_limit_is_413_unread() -> None:
    app = create_rest_app(tenants(), max_body_bytes=LIMIT)
    headers = {"authorization": f"Bearer {ALICE_KEY}", "content-length": str(LIMIT + 1)}
    status, answer, receive = await _call(app, "POST", "/v1/jobs", headers)
    assert (status, receive.calls, answer["connection"]) == (413, 0, "close")


async def test_a_route_may_take_more_or_less_than_the_gateways_limit() -> None:
    app = create_rest_app(tenants(), max_body_bytes=LIMIT)

    @app.post("/v1/echo/{name}")
    async def echo(name: str, body: dict[str, str], tenant: TenantDep) -> dict[str, int]:
        return {"bytes": len(body["pad"])}

    set_body_limit(app, "/v1/echo/{name}", 4 * LIMIT)
    headers = {"Authorization": f"Bearer {ALICE_KEY}"}
    body = {"pad": "x" * 2 * LIMIT}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as c:
        assert (await c.post("/v1/echo/a", json=body, headers=headers)).status_code == 200
        over = await c.post("/v1/echo/a", json={"pad": "x" * 4 * LIMIT}, headers=headers)
        assert (over.status_code, over.json()["error"]) == (413, "payload_too_large")
        jobs = await c.post("/v1/jobs", json={"command": ["x"], "env": body}, headers=headers)
        assert jobs.status_code == 413


class _Counting(InMemoryCloudService):
    def __init__(self) -> None:
        super().__init__()
        self.lookups = 0

    async def authenticate(self, api_key: str) -> Tenant:
        self.lookups += 1
        return await super().authenticate(api_key)


async def test_the_key_is_looked_up_once_per_request() -> None:
    service = _Counting()
    service.add_tenant("alice", ALICE_KEY)
    app = create_rest_app(service)
    headers = {"Authorization": f"Bearer {ALICE_KEY}"}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as c:
        assert (await c.post("/v1/jobs", json={"command": ["x"]}, headers=headers)).is_success
        assert (await c.get("/v1/jobs", headers=headers)).is_success
    assert service.lookups == 2


# -- over a real server (uvicorn, h11) --------------------------------------------------------


async def _exchange(
    url: str, head: str, body_chunks: list[bytes], pause_s: float
) -> tuple[bytes, int, bool]:
    """Send ``head`` and then ``body_chunks`` one every ``pause_s`` until the server answers;
    (the answer, body bytes sent before it came, whether the server then closed)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    sent = 0
    try:
        writer.write(head.encode())
        await writer.drain()
        answer = b""
        for chunk in [*body_chunks, b""]:
            try:
                answer = await asyncio.wait_for(reader.read(65536), pause_s)
                break
            except TimeoutError:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        else:
            answer = await asyncio.wait_for(reader.read(65536), 5)
        try:  # the rest of the answer, up to the server closing the connection
            rest = await asyncio.wait_for(reader.read(), 5)
        except TimeoutError:
            return answer, sent, False
        return answer + rest, sent, True
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def _head(path: str, headers: dict[str, str]) -> str:
    lines = [f"POST {path} HTTP/1.1", "Host: gw", "Content-Type: application/json"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


@pytest.mark.parametrize(
    ("framing", "status"),
    [
        ({"Content-Length": str(DEFAULT_MAX_BODY_BYTES)}, 401),
        ({"Transfer-Encoding": "chunked"}, 401),
        ({"Content-Length": str(BIG), "Authorization": f"Bearer {ALICE_KEY}"}, 413),
    ],
    ids=["length", "chunked", "too-long"],
)
async def test_an_upload_refused_is_answered_at_once_and_cut_off(
    framing: dict[str, str], status: int
) -> None:
    with LiveGateway(tenants()) as live:
        answer, sent, closed = await _exchange(
            live.url, _head("/v1/jobs", framing), [b"1000\r\n" + b"x" * 4096] * 50, 0.5
        )
    assert answer.startswith(f"HTTP/1.1 {status} ".encode()), answer[:200]
    assert b"connection: close" in answer.lower()
    assert closed and sent <= 4200  # answered after the headers, not after the body


async def test_a_body_slower_than_the_deadline_is_408() -> None:
    with LiveGateway(tenants(), body_timeout_s=1.0) as live:
        started = asyncio.get_running_loop().time()
        head = _head("/v1/jobs", {"Authorization": f"Bearer {ALICE_KEY}", "Content-Length": "1000"})
        answer, sent, closed = await _exchange(live.url, head, [b" "] * 100, 0.2)
        took = asyncio.get_running_loop().time() - started
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"request_timeout"' in answer and b"connection: close" in answer.lower()
    assert closed and 1.0 <= took < 4.0 and sent < 1000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_a_request_head_slower_than_its_deadline_loses_the_connection() -> None:
    port = _free_port()
    http = GatewayHttpSettings(header_timeout_s=0.5)
    server = uvicorn.Server(server_config(create_rest_app(tenants()), "127.0.0.1", port, http))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event)
            await asyncio.sleep(0.02)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = asyncio.get_running_loop().time()
        writer.write(b"GET /v1/health HTTP/1.1\r\nHost: gw\r\n")  # and never the blank line
        assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, unanswered
        assert 0.5 <= asyncio.get_running_loop().time() - started < 3
        writer.close()
        # prompt requests on one kept-alive connection outlive the deadline together
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(4):
                assert (await client.get("/v1/health")).status_code == 200
                await asyncio.sleep(0.3)
    finally:
        server.should_exit = True
        await asyncio.gather(serving, return_exceptions=True)
