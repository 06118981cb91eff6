"""The REST API over the in-memory service: auth, isolation, validation, limits, idempotency,
cancel, logs (JSON pages in-process; SSE against a real uvicorn server)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from byteleap.gateway import errors as cloud_errors
from byteleap.gateway.errors import CloudError
from byteleap.gateway.memory import InMemoryCloudService
from byteleap.gateway.port import Tenant
from byteleap.gateway.rest import create_rest_app
from gateway.live import ALICE_KEY, BOB_KEY, LiveGateway, tenants

ALICE = {"Authorization": f"Bearer {ALICE_KEY}"}
BOB = {"Authorization": f"Bearer {BOB_KEY}"}
ECHO = {"command": ["echo", "hi"]}
LIMIT = 4096


@pytest.fixture
def service() -> InMemoryCloudService:
    return tenants()


@pytest.fixture
async def api(service: InMemoryCloudService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_rest_app(service, max_body_bytes=LIMIT)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as c:
        yield c


async def _submit(api: httpx.AsyncClient, body: Any = ECHO, **headers: str) -> dict[str, Any]:
    response = await api.post("/v1/jobs", json=body, headers={**ALICE, **headers})
    assert response.status_code == 201, response.text
    return dict(response.json())


async def test_health_needs_no_key(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {ALICE_KEY}"}],
    ids=["missing", "wrong", "not-bearer"],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/jobs/x"), ("GET", "/v1/jobs/x/logs")],
)
async def test_missing_or_wrong_key_is_401(
    api: httpx.AsyncClient, headers: dict[str, str], method: str, path: str
) -> None:
    response = await api.request(method, path, headers=headers, json=ECHO)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert response.headers["www-authenticate"] == "Bearer"


async def test_submit_get_list(api: httpx.AsyncClient) -> None:
    job = await _submit(api, {"command": ["python", "-c", "1"], "env": {"A": "1"}})
    assert job["state"] == "queued"
    assert job["spec"]["env"] == {"A": "1"}
    got = await api.get(f"/v1/jobs/{job['id']}", headers=ALICE)
    assert got.json() == job
    listed = await api.get("/v1/jobs", headers=ALICE)
    assert [j["id"] for j in listed.json()] == [job["id"]]


async def test_another_tenants_job_is_404(api: httpx.AsyncClient) -> None:
    job = await _submit(api)
    for method, path in [
        ("GET", f"/v1/jobs/{job['id']}"),
        ("POST", f"/v1/jobs/{job['id']}/cancel"),
        ("GET", f"/v1/jobs/{job['id']}/logs"),
        ("GET", f"/v1/jobs/{job['id']}/logs?follow=true"),
    ]:
        response = await api.request(method, path, headers=BOB)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "not_found"
    assert (await api.get("/v1/jobs", headers=BOB)).json() == []
    assert (await api.get(f"/v1/jobs/{job['id']}", headers=ALICE)).json()["state"] == "queued"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": []}, "command"),
        ({}, "command"),
        ({"command": ["x"], "resources": {"ram_mib": 1}}, "resources.ram_mib"),
        ({"command": ["x"], "timeout_s": -1}, "timeout_s"),
        ({"command": ["x"], "inputs": {"../escape": {"content": ""}}}, "inputs"),
        ({"command": ["x"], "surprise": 1}, "surprise"),
        ({"command": "echo hi"}, "command"),
    ],
)
async def test_invalid_spec_is_422_naming_the_field(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    response = await api.post("/v1/jobs", json=body, headers=ALICE)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_spec"
    assert response.json()["field"] == field
    assert (await api.get("/v1/jobs", headers=ALICE)).json() == []


@pytest.mark.parametrize("content", [b"{not json", b"[1,2]", b"null", b"\xff\xfe", b"O\x93\x886"])
async def test_malformed_body_is_422(api: httpx.AsyncClient, content: bytes) -> None:
    headers = {**ALICE, "Content-Type": "application/json"}
    response = await api.post("/v1/jobs", content=content, headers=headers)
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_spec"


async def test_bad_query_is_422_naming_the_parameter(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/jobs?limit=0", headers=ALICE)
    assert response.status_code == 422
    assert response.json() == response.json() | {"error": "invalid_request", "field": "limit"}


def _body_of(size: int) -> bytes:
    prefix = b'{"command": ["echo"], "env": {"PAD": "'
    suffix = b'"}}'
    return prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix


async def test_body_at_the_limit_passes_and_over_it_is_413(api: httpx.AsyncClient) -> None:
    headers = {**ALICE, "Content-Type": "application/json"}
    at_limit = await api.post("/v1/jobs", content=_body_of(LIMIT), headers=headers)
    assert at_limit.status_code == 201, at_limit.text
    over = await api.post("/v1/jobs", content=_body_of(LIMIT + 1), headers=headers)
    assert over.status_code == 413
    assert over.json()["error"] == "payload_too_large"


async def test_streamed_body_over_the_limit_is_413(api: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: chunked upload
        for _ in range(LIMIT // 100 + 1):
            yield b" " * 100

    headers = {**ALICE, "Content-Type": "application/json"}
    response = await api.post("/v1/jobs", content=chunks(), headers=headers)
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


async def test_lying_content_length_does_not_pass_the_limit(
    service: InMemoryCloudService,
) -> None:
    app = create_rest_app(service, max_body_bytes=LIMIT)
    sent: list[dict[str, Any]] = []
    body = _body_of(LIMIT * 2)
    messages = [
        {"type": "http.request", "body": body[i : i + 1000], "more_body": True}
        for i in range(0, len(body), 1000)
    ]
    messages[-1]["more_body"] = False

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http", "method": "POST", "path": "/v1/jobs", "raw_path": b"/v1/jobs",
        "query_string": b"", "root_path": "", "scheme": "http", "http_version": "1.1",
        "server": ("gw", 80), "client": ("127.0.0.1", 1), "asgi": {"version": "3.0"},
        "headers": [(b"content-length", b"10"), (b"content-type", b"application/json"),
                    (b"authorization", f"Bearer {ALICE_KEY}".encode())],
    }  # fmt: skip
    await app(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_idempotency_key_header_and_body(api: httpx.AsyncClient) -> None:
    first = await _submit(api, ECHO, **{"Idempotency-Key": "k1"})
    again = await _submit(api, ECHO, **{"Idempotency-Key": "k1"})
    in_body = await _submit(api, {**ECHO, "idempotency_key": "k1"})
    other = await _submit(api, ECHO, **{"Idempotency-Key": "k2"})
    assert first["id"] == again["id"] == in_body["id"] != other["id"]
    assert first["spec"]["idempotency_key"] == "k1"
    bobs = await api.post("/v1/jobs", json=ECHO, headers={**BOB, "Idempotency-Key": "k1"})
    assert bobs.json()["id"] != first["id"]
    clash = await api.post(
        "/v1/jobs", json={**ECHO, "idempotency_key": "a"}, headers={**ALICE, "Idempotency-Key": "b"}
    )
    assert clash.status_code == 422
    assert clash.json()["field"] == "idempotency_key"
    empty = await api.post("/v1/jobs", json=ECHO, headers={**ALICE, "Idempotency-Key": ""})
    assert empty.status_code == 422


async def test_cancel_then_cancel_again_is_409(
    api: httpx.AsyncClient, service: InMemoryCloudService
) -> None:
    job = await _submit(api)
    cancelled = await api.post(f"/v1/jobs/{job['id']}/cancel", headers=ALICE)
    assert cancelled.status_code == 200
    assert cancelled.json()["state"] == "cancelled"
    again = await api.post(f"/v1/jobs/{job['id']}/cancel", headers=ALICE)
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"
    done = await _submit(api)
    service.finish(done["id"], 0, ["ok"])
    finished = await api.post(f"/v1/jobs/{done['id']}/cancel", headers=ALICE)
    assert finished.status_code == 409


async def test_log_pages_continue_from_next(
    api: httpx.AsyncClient, service: InMemoryCloudService
) -> None:
    job = await _submit(api)
    service.finish(job["id"], 3, [f"line {i}" for i in range(5)])
    page = (await api.get(f"/v1/jobs/{job['id']}/logs?limit=2", headers=ALICE)).json()
    assert [e["line"] for e in page["entries"]] == ["line 0", "line 1"] and page["more"]
    rest = await api.get(f"/v1/jobs/{job['id']}/logs?after={page['next']}", headers=ALICE)
    assert [e["seq"] for e in rest.json()["entries"]] == [2, 3, 4]
    assert rest.json()["next"] == 5 and not rest.json()["more"]
    end = await api.get(f"/v1/jobs/{job['id']}/logs?after=99", headers=ALICE)
    assert end.json() == {"entries": [], "next": 99, "more": False}
    view = (await api.get(f"/v1/jobs/{job['id']}", headers=ALICE)).json()
    assert (view["state"], view["exit_code"]) == ("failed", 3)


@pytest.mark.adversarial
async def test_a_log_page_stays_within_1_mib_however_long_its_lines(
    api: httpx.AsyncClient, service: InMemoryCloudService
) -> None:
    job = await _submit(api)
    service.finish(job["id"], 0, [f"{i:03d}" + "\x01" * 60_000 for i in range(100)])  # 36 MB
    after, seen = 0, []
    while True:
        response = await api.get(
            f"/v1/jobs/{job['id']}/logs?after={after}&limit=10000", headers=ALICE
        )
        assert len(response.content) <= 1 << 20
        page = response.json()
        seen += [e["seq"] for e in page["entries"]]
        after = page["next"]
        if not page["more"]:
            break
    assert seen == list(range(100))


async def test_unknown_route_and_method_answer_json(api: httpx.AsyncClient) -> None:
    missing = await api.get("/v1/nothing-here", headers=ALICE)
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    wrong = await api.delete("/v1/jobs", headers=ALICE)
    assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")


async def test_openapi_documents_the_routes(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/openapi.json")).json()
    assert set(spec["paths"]) == {
        "/v1/health",
        "/v1/jobs",
        "/v1/jobs/{job_id}",
        "/v1/jobs/{job_id}/cancel",
        "/v1/jobs/{job_id}/logs",
        "/v1/jobs/{job_id}/artifacts",
        "/v1/jobs/{job_id}/artifacts/{path}",
        "/v1/leases",
        "/v1/leases/{lease_id}",
        "/v1/leases/{lease_id}/extend",
        "/v1/leases/{lease_id}/release",
    }
    assert "HTTPBearer" in spec["components"]["securitySchemes"]


class _Raising(InMemoryCloudService):
    """The twin, but every job lookup fails with the error under test."""

    def __init__(self, error: CloudError) -> None:
        super().__init__()
        self.error = error

    async def get_job(self, tenant: Tenant, job_id: str) -> Any:
        raise self.error


def _cloud_error_classes() -> list[type[CloudError]]:
    return [
        cls
        for cls in vars(cloud_errors).values()
        if isinstance(cls, type) and issubclass(cls, CloudError)
    ]


@pytest.mark.parametrize("cls", _cloud_error_classes(), ids=lambda c: c.__name__)
async def test_every_cloud_error_maps_to_its_status(cls: type[CloudError]) -> None:
    error = (
        cls("boom", field="resources.gpu_count") if cls is cloud_errors.InvalidSpec else cls("boom")
    )
    service = _Raising(error)
    service.add_tenant("alice", ALICE_KEY)
    transport = httpx.ASGITransport(create_rest_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
        response = await api.get("/v1/jobs/j", headers=ALICE)
    assert response.status_code == cls.status
    body = response.json()
    assert (body["error"], body["detail"]) == (cls.reason, "boom")
    assert body["field"] == ("resources.gpu_count" if cls is cloud_errors.InvalidSpec else None)


# -- Server-Sent Events, over a real server -------------------------------------------------


@pytest.fixture
def live() -> Iterator[LiveGateway]:
    with LiveGateway(tenants()) as gateway:
        yield gateway


async def _events(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    event = ""
    async for line in response.aiter_lines():
        if line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield event, json.loads(line.removeprefix("data: "))


async def test_sse_streams_lines_as_appended_and_ends_with_the_job(live: LiveGateway) -> None:
    async with httpx.AsyncClient(base_url=live.url, headers=ALICE, timeout=10) as api:
        job = (await api.post("/v1/jobs", json=ECHO)).json()
        live.call(live.service.start, job["id"])
        live.call(live.service.append_log, job["id"], "before")
        headers = {"Accept": "text/event-stream"}
        async with api.stream("GET", f"/v1/jobs/{job['id']}/logs", headers=headers) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            events = _events(response)
            seen = []
            for i in range(3):
                kind, data = await asyncio.wait_for(anext(events), 5)
                assert kind == "log"
                seen.append(data["line"])
                # the next line exists only after this one arrived: it really streams
                live.call(live.service.append_log, job["id"], f"live {i}", "stderr")
            live.call(live.service.finish, job["id"], 0)
            rest = [item async for item in events]
    assert seen == ["before", "live 0", "live 1"]
    assert rest[0] == ("log", rest[0][1]) and rest[0][1]["line"] == "live 2"
    assert rest[0][1]["stream"] == "stderr"
    assert rest[-1][0] == "end"
    assert rest[-1][1]["state"] == "succeeded"


async def test_sse_resumes_after_last_event_id_and_ends_for_a_finished_job(
    live: LiveGateway,
) -> None:
    async with httpx.AsyncClient(base_url=live.url, headers=ALICE, timeout=10) as api:
        job = (await api.post("/v1/jobs", json=ECHO)).json()
        live.call(live.service.finish, job["id"], 0, ["a", "b", "c"])
        headers = {"Last-Event-ID": "0"}
        async with api.stream(
            "GET", f"/v1/jobs/{job['id']}/logs?follow=true", headers=headers
        ) as response:
            events = [item async for item in _events(response)]
    assert [d["line"] for k, d in events if k == "log"] == ["b", "c"]
    assert events[-1][0] == "end"


async def test_sse_client_going_away_leaves_the_server_serving(live: LiveGateway) -> None:
    async with httpx.AsyncClient(base_url=live.url, headers=ALICE, timeout=10) as api:
        job = (await api.post("/v1/jobs", json=ECHO)).json()
        live.call(live.service.append_log, job["id"], "only")
        async with api.stream("GET", f"/v1/jobs/{job['id']}/logs?follow=true") as response:
            kind, data = await anext(_events(response))
        assert (kind, data["line"]) == ("log", "only")
        assert (await api.get("/v1/health")).status_code == 200
