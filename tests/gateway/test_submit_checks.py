"""Whatever dispatch, a miner or a worker would refuse later is refused at submit: 422 naming
the field over REST (jobs, leases, services), INVALID_ARGUMENT naming it over gRPC, and
nothing is stored."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import grpc
import httpx
import pytest

from byteleap.gateway._pb import gateway_pb2 as pb
from byteleap.gateway._pb import gateway_pb2_grpc as pb_grpc
from byteleap.gateway.grpc_api import serve_grpc
from byteleap.gateway.memory import InMemoryCloudService
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.rest_services import mount_services
from gateway.live import ALICE_KEY, tenants
from gateway.services_desk import Desk, open_desk

ALICE = {"Authorization": f"Bearer {ALICE_KEY}"}
FOUR_MB_ARG = "x" * (4 << 20)

# (what is added to a valid program, the field named)
BAD_PROGRAMS: list[tuple[dict[str, Any], str]] = [
    ({"resources": {"gpu_model": "H100"}}, "resources.gpu_model"),
    ({"resources": {"gpu_count": 0, "min_vram_mib": 1024}}, "resources.min_vram_mib"),
    ({"command": ["echo", "a\x00b"]}, "command"),
    ({"command": [""]}, "command"),
    ({"command": ["echo", FOUR_MB_ARG]}, "command"),
    ({"env": {"A": "b\x00c"}}, "env"),
    ({"env": {"": "x"}}, "env"),
    ({"env": {"A=B": "x"}}, "env"),
    ({"env": {"1A": "x"}}, "env"),
    ({"env": {"A": "y" * (200 << 10)}}, "env"),
    ({"image": "--privileged"}, "image"),
    ({"image": "alpine latest"}, "image"),
    ({"inputs": {"artifacts": {"content": "x"}}}, "inputs"),
    ({"inputs": {"a": {"content": "x"}, "a/b": {"content": "y"}}}, "inputs"),
    ({"max_price_per_s": 1e300}, "max_price_per_s"),
    ({"max_price_per_s": 1e-320}, "max_price_per_s"),
]
BAD_JOBS = [
    *BAD_PROGRAMS,
    ({"timeout_s": 1e-320}, "timeout_s"),
    ({"timeout_s": 0.5}, "timeout_s"),
]


def _job(extra: dict[str, Any]) -> dict[str, Any]:
    return {"command": ["echo", "hi"], **extra}


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, InMemoryCloudService]]:
    service = tenants(capacity=2)
    transport = httpx.ASGITransport(create_rest_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as client:
        yield client, service


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 422, response.text
    assert (response.json()["error"], response.json()["field"]) == ("invalid_spec", field)


@pytest.mark.adversarial
@pytest.mark.parametrize(("extra", "field"), BAD_JOBS)
async def test_a_job_a_later_stage_would_refuse_is_422(
    api: tuple[httpx.AsyncClient, InMemoryCloudService], extra: dict[str, Any], field: str
) -> None:
    client, service = api
    _refused(await client.post("/v1/jobs", json=_job(extra), headers=ALICE), field)
    assert service.job_ids() == []


@pytest.mark.parametrize(
    "extra",
    [{"resources": {"gpu_count": 2}}, {"env": {"_A1": "x=y"}}, {"image": "ghcr.io/a/b:1@sha"}],
)
async def test_a_sound_job_is_still_taken(
    api: tuple[httpx.AsyncClient, InMemoryCloudService], extra: dict[str, Any]
) -> None:
    client, _ = api
    response = await client.post("/v1/jobs", json=_job(extra), headers=ALICE)
    assert response.status_code == 201, response.text


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"resources": {"gpu_model": "H100"}, "duration_s": 600}, "resources.gpu_model"),
        ({"resources": {"gpu_model": ""}, "duration_s": 600}, "resources.gpu_model"),
        ({"duration_s": 600, "max_price_per_s": 1e9}, "max_price_per_s"),
    ],
)
async def test_a_lease_placement_would_refuse_is_422(
    api: tuple[httpx.AsyncClient, InMemoryCloudService], body: dict[str, Any], field: str
) -> None:
    client, service = api
    _refused(await client.post("/v1/leases", json=body, headers=ALICE), field)
    assert service.lease_ids() == []


@pytest.fixture
async def desk(sqlite_url: str) -> AsyncIterator[Desk]:
    opened = await open_desk(sqlite_url)
    yield opened
    await opened.close()


@pytest.mark.adversarial
async def test_a_service_a_later_stage_would_refuse_is_422(desk: Desk) -> None:
    app = create_rest_app(desk.tenants)
    mount_services(app, desk.desk)
    headers = {"authorization": f"Bearer {desk.keys['alice']}"}
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw", headers=headers) as c:
        for extra, field in [*BAD_PROGRAMS, ({"health": {"start_timeout_s": 1e-320}}, "health")]:
            body = {"name": "svc", "command": ["python", "serve.py"], **extra}
            response = await c.post("/v1/services", json=body)
            assert response.status_code == 422, (extra, response.text)
            assert response.json()["field"].startswith(field), extra
        created = (await c.post("/v1/services", json={"name": "ok", "command": ["x"]})).json()
        update = await c.post(f"/v1/services/{created['id']}/update", json={"env": {"A\x00": ""}})
        _refused(update, "env")
        assert (await c.get("/v1/services")).json()[0]["revision"] == 1


@pytest.mark.adversarial
async def test_grpc_refuses_the_same_specs_naming_the_field() -> None:
    service = tenants(capacity=1)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = await serve_grpc(service, "127.0.0.1", port)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = pb_grpc.GatewayStub(channel)
        auth = (("authorization", f"Bearer {ALICE_KEY}"),)
        for extra, field in BAD_JOBS[:12]:
            request = pb.SubmitJobRequest(spec_json=json.dumps(_job(extra)))
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.SubmitJob(request, metadata=auth, timeout=10)
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert dict(caught.value.trailing_metadata() or ())["field"] == field
    await server.stop(None)
    assert service.job_ids() == []
