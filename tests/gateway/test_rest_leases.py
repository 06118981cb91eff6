"""Lease routes over the in-memory service: create/get/list/extend/release, isolation,
capacity (503), ended leases (409), balance (402), validation (422) and per-second billing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from byteleap.gateway.memory import InMemoryCloudService
from byteleap.gateway.rest import create_rest_app
from gateway.live import ALICE_KEY, BOB_KEY, tenants

ALICE = {"Authorization": f"Bearer {ALICE_KEY}"}
BOB = {"Authorization": f"Bearer {BOB_KEY}"}
ONE_GPU = {"resources": {"gpu_count": 1}, "duration_s": 600}
T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(clock: Clock) -> InMemoryCloudService:
    service = tenants(capacity=2)
    service.clock = clock
    return service


@pytest.fixture
async def api(service: InMemoryCloudService) -> AsyncIterator[httpx.AsyncClient]:
    app = create_rest_app(service)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as c:
        yield c


async def _create(api: httpx.AsyncClient, body: Any = ONE_GPU) -> dict[str, Any]:
    response = await api.post("/v1/leases", json=body, headers=ALICE)
    assert response.status_code == 201, response.text
    return dict(response.json())


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/leases"),
        ("POST", "/v1/leases"),
        ("GET", "/v1/leases/x"),
        ("POST", "/v1/leases/x/extend"),
        ("POST", "/v1/leases/x/release"),
    ],
)
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}])
async def test_missing_or_wrong_key_is_401(
    api: httpx.AsyncClient, headers: dict[str, str], method: str, path: str
) -> None:
    response = await api.request(method, path, headers=headers, json={"seconds": 1})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_create_get_list(api: httpx.AsyncClient, service: InMemoryCloudService) -> None:
    two = {"resources": {"gpu_count": 2, "gpu_model": "H100"}, "duration_s": 60}
    lease = await _create(api, two)
    assert lease["state"] == "active"
    assert (lease["gpu_model"], lease["gpu_count"]) == ("H100", 2)
    assert lease["price_per_s"] == pytest.approx(2 * service.lease_price_per_s)
    assert (lease["created_at"], lease["ends_at"], lease["cost"]) == (T0, T0 + 60, 0)
    assert service.capacity == 1
    cpu = await _create(api, {"resources": {"cpu_cores": 4}, "duration_s": 60})
    assert (cpu["gpu_model"], cpu["gpu_count"], cpu["cpu_cores"]) == (None, 0, 4)
    got = await api.get(f"/v1/leases/{lease['id']}", headers=ALICE)
    assert got.json() == lease
    listed = (await api.get("/v1/leases", headers=ALICE)).json()
    assert {x["id"] for x in listed} == {lease["id"], cpu["id"]}
    assert len((await api.get("/v1/leases?limit=1", headers=ALICE)).json()) == 1


async def test_another_tenants_lease_is_404(api: httpx.AsyncClient) -> None:
    lease = await _create(api)
    for method, path, body in [
        ("GET", f"/v1/leases/{lease['id']}", None),
        ("POST", f"/v1/leases/{lease['id']}/extend", {"seconds": 60}),
        ("POST", f"/v1/leases/{lease['id']}/release", None),
    ]:
        response = await api.request(method, path, headers=BOB, json=body)
        assert response.status_code == 404, (method, path)
        assert response.json()["error"] == "not_found"
    assert (await api.get("/v1/leases", headers=BOB)).json() == []
    mine = (await api.get(f"/v1/leases/{lease['id']}", headers=ALICE)).json()
    assert (mine["state"], mine["ends_at"]) == ("active", lease["ends_at"])


async def test_no_capacity_is_503_and_release_frees_a_worker(
    api: httpx.AsyncClient, service: InMemoryCloudService
) -> None:
    first, _ = await _create(api), await _create(api)
    full = await api.post("/v1/leases", json=ONE_GPU, headers=ALICE)
    assert full.status_code == 503
    assert full.json()["error"] == "no_capacity"
    released = await api.post(f"/v1/leases/{first['id']}/release", headers=ALICE)
    assert released.json()["state"] == "released"
    assert service.capacity == 1
    await _create(api)
    assert service.capacity == 0


@pytest.mark.parametrize(
    "body",
    [
        {"resources": {"gpu_count": 1, "gpu_model": "A100"}, "duration_s": 60},
        {"resources": {"gpu_count": 1}, "duration_s": 60, "max_price_per_s": 1e-9},
    ],
    ids=["other-model", "too-cheap"],
)
async def test_no_worker_that_fits_is_503(
    api: httpx.AsyncClient, service: InMemoryCloudService, body: dict[str, Any]
) -> None:
    response = await api.post("/v1/leases", json=body, headers=ALICE)
    assert (response.status_code, response.json()["error"]) == (503, "no_capacity")
    assert service.capacity == 2


async def test_release_bills_price_times_elapsed(
    api: httpx.AsyncClient, service: InMemoryCloudService, clock: Clock
) -> None:
    before = service.tenant(1).balance
    lease = await _create(api)
    clock.now += 100
    running = (await api.get(f"/v1/leases/{lease['id']}", headers=ALICE)).json()
    assert running["cost"] == pytest.approx(100 * lease["price_per_s"])
    assert running["billed_until"] == T0 + 100
    clock.now += 50
    released = (await api.post(f"/v1/leases/{lease['id']}/release", headers=ALICE)).json()
    assert (released["state"], released["ended_at"]) == ("released", T0 + 150)
    assert released["cost"] == pytest.approx(150 * lease["price_per_s"])
    assert service.tenant(1).balance == pytest.approx(before - released["cost"])
    clock.now += 1000  # an ended lease costs nothing more
    assert (await api.get(f"/v1/leases/{lease['id']}", headers=ALICE)).json() == released


async def test_extend_pushes_the_end_and_a_lease_expires_at_it(
    api: httpx.AsyncClient, service: InMemoryCloudService, clock: Clock
) -> None:
    lease = await _create(api)
    extended = await api.post(
        f"/v1/leases/{lease['id']}/extend", json={"seconds": 30.5}, headers=ALICE
    )
    assert extended.status_code == 200, extended.text
    assert extended.json()["ends_at"] == lease["ends_at"] + 30.5
    clock.now = lease["ends_at"] + 100
    expired = (await api.get(f"/v1/leases/{lease['id']}", headers=ALICE)).json()
    assert (expired["state"], expired["ended_at"]) == ("expired", lease["ends_at"] + 30.5)
    assert expired["cost"] == pytest.approx(630.5 * lease["price_per_s"])
    assert service.capacity == 2


@pytest.mark.parametrize("end", ["release", "expire", "fail"])
async def test_extend_or_release_an_ended_lease_is_409(
    api: httpx.AsyncClient, service: InMemoryCloudService, clock: Clock, end: str
) -> None:
    lease = await _create(api)
    if end == "release":
        await api.post(f"/v1/leases/{lease['id']}/release", headers=ALICE)
    elif end == "expire":
        clock.now = lease["ends_at"]
    else:
        service.fail_lease(lease["id"])
    for action, body in [("extend", {"seconds": 60}), ("release", None)]:
        response = await api.post(f"/v1/leases/{lease['id']}/{action}", json=body, headers=ALICE)
        assert response.status_code == 409, action
        assert response.json()["error"] == "conflict"


async def test_balance_too_low_is_402(
    api: httpx.AsyncClient, service: InMemoryCloudService
) -> None:
    too_long = {"resources": {"gpu_count": 64}, "duration_s": 7 * 24 * 3600}
    response = await api.post("/v1/leases", json=too_long, headers=ALICE)
    assert (response.status_code, response.json()["error"]) == (402, "payment_required")
    assert service.capacity == 2
    lease = await _create(api, {"resources": {"gpu_count": 64}, "duration_s": 60})
    longer = await api.post(
        f"/v1/leases/{lease['id']}/extend", json={"seconds": 7 * 24 * 3600}, headers=ALICE
    )
    assert longer.status_code == 402
    assert (await api.get(f"/v1/leases/{lease['id']}", headers=ALICE)).json() == lease


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"resources": {"gpu_count": 1}}, "duration_s"),
        ({"duration_s": 5}, "duration_s"),
        ({"duration_s": 60, "resources": {"gpu_count": -1}}, "resources.gpu_count"),
        ({"duration_s": 60, "max_price_per_s": 0}, "max_price_per_s"),
        ({"duration_s": 60, "command": ["x"]}, "command"),
    ],
)
async def test_invalid_lease_spec_is_422_naming_the_field(
    api: httpx.AsyncClient, service: InMemoryCloudService, body: dict[str, Any], field: str
) -> None:
    response = await api.post("/v1/leases", json=body, headers=ALICE)
    assert response.status_code == 422
    assert (response.json()["error"], response.json()["field"]) == ("invalid_spec", field)
    assert service.capacity == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"seconds": 0}, "seconds"),
        ({"seconds": -5}, "seconds"),
        ({}, "seconds"),
        ({"seconds": "soon"}, "seconds"),
        ({"seconds": 1e300}, "seconds"),
        ({"seconds": 5, "until": 1}, "until"),
    ],
)
async def test_invalid_extension_is_422_and_changes_nothing(
    api: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    lease = await _create(api)
    response = await api.post(f"/v1/leases/{lease['id']}/extend", json=body, headers=ALICE)
    assert response.status_code == 422
    assert response.json()["field"] == field
    assert (await api.get(f"/v1/leases/{lease['id']}", headers=ALICE)).json() == lease
