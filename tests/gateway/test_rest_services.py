"""REST ``/v1/services`` over a real desk and store with no miners (in process, over ASGI):
a change that breaks the spec as a whole is a 422 naming the field (it was a 500), and
invoking answers with the documented errors when no replica is ready."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from byteleap.gateway.core import create_tenant_with_key
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.rest_services import mount_services
from gateway.services_desk import Desk, open_desk

SPEC = {"name": "echo", "command": ["python", "serve.py"], "autoscale": {"max_replicas": 2}}


@pytest.fixture
async def desk(sqlite_url: str) -> AsyncIterator[Desk]:
    opened = await open_desk(sqlite_url)
    yield opened
    await opened.close()


def _client(desk: Desk, tenant: str) -> httpx.AsyncClient:
    app = create_rest_app(desk.tenants)
    mount_services(app, desk.desk)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://gateway",
        headers={"authorization": f"Bearer {desk.keys[tenant]}"},
    )


async def test_a_change_breaking_the_whole_spec_is_422_and_changes_nothing(desk: Desk) -> None:
    async with _client(desk, "alice") as http:
        created = (await http.post("/v1/services", json=SPEC)).json()
        url = f"/v1/services/{created['id']}"
        for path, body, field in [
            ("scale", {"min_replicas": 3}, "autoscale"),  # above max_replicas (2)
            ("update", {"env": {"PORT": "8080"}}, "env"),
            ("update", {"inputs": {"../x": {"content": "eA=="}}}, "inputs"),
        ]:
            answer = await http.post(f"{url}/{path}", json=body)
            assert answer.status_code == 422, answer.text
            assert answer.json()["error"] == "invalid_spec"
            assert answer.json()["field"] == field
        assert (await http.get(url)).json() == created


async def test_invoke_without_a_ready_replica(desk: Desk) -> None:
    async with _client(desk, "alice") as http, _client(desk, "bob") as bob:
        created = (await http.post("/v1/services", json=SPEC)).json()
        url = f"/v1/services/{created['id']}/invoke/hello"
        for method in ("GET", "POST", "DELETE"):
            answer = await http.request(method, url)
            assert (answer.status_code, answer.json()["error"]) == (503, "no_capacity")
            other = await bob.request(method, url)
            assert (other.status_code, other.json()["error"]) == (404, "not_found")


@pytest.mark.adversarial
async def test_a_service_needs_the_balance_for_its_first_period(desk: Desk) -> None:
    """Finding 5: a tenant with a balance of 0 could run a service."""
    desk.keys["broke"] = await create_tenant_with_key(desk.store, "broke", balance=0.0)
    async with _client(desk, "broke") as http:
        answer = await http.post("/v1/services", json=SPEC)
        assert answer.status_code == 402, answer.text
        assert answer.json()["error"] == "payment_required"
        assert "first period" in answer.json()["detail"]
        assert (await http.get("/v1/services")).json() == []
