"""``/v1/openai/{service}/v1/...``: a service with ``openai: true`` is reached there, with the
tenant's key as a Bearer token (what OpenAI's clients send), through the real gateway, desk
and proxy to a real replica process; any other service is 404 there."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from byteleap.gateway.core import create_tenant_with_key
from byteleap.protocol.service_spec import ServiceSpec, ServiceUpdate
from gateway.serving.replica_harness import Gateway, serving_gateway, spec, start_replica

pytestmark = pytest.mark.slow


@pytest.fixture
async def gateway(tmp_path: Path, free_port: Callable[[], int]) -> AsyncIterator[Gateway]:
    with start_replica("stream_server.py", free_port()) as endpoint:
        async with serving_gateway(tmp_path, free_port(), [endpoint]) as gw:
            yield gw


def test_openai_is_off_unless_asked_and_must_be_a_boolean() -> None:
    assert ServiceSpec.model_validate({"name": "a", "command": ["x"]}).openai is False
    on = ServiceSpec.model_validate({"name": "a", "command": ["x"], "openai": True})
    assert on.openai is True
    with pytest.raises(ValidationError):
        ServiceSpec.model_validate({"name": "a", "command": ["x"], "openai": "sometimes"})
    assert ServiceUpdate(openai=False).apply(on).openai is False


async def test_an_openai_service_is_served_at_openais_paths(gateway: Gateway) -> None:
    service = await gateway.ready_service(spec("llm", openai=True))
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}]}
    async with gateway.client() as http:
        for ref in ("llm", service):  # by name or by id
            r = await http.post(f"/v1/openai/{ref}/v1/chat/completions", json=body)
            assert r.status_code == 200, r.text
            seen = r.json()
            assert (seen["method"], seen["path"]) == ("POST", "/v1/chat/completions")
            assert json.loads(seen["body"]) == body
            assert "authorization" not in seen["headers"]
        r = await http.post("/v1/openai/llm/v1/completions", json={"prompt": "a"})
        assert r.json()["path"] == "/v1/completions"
        r = await http.get("/v1/openai/llm/v1/models")
        assert (r.json()["method"], r.json()["path"]) == ("GET", "/v1/models")
        unauthenticated = await http.get(
            "/v1/openai/llm/v1/models", headers={"authorization": "Bearer nope"}
        )
        assert unauthenticated.status_code == 401


async def test_other_services_and_other_tenants_get_404(gateway: Gateway) -> None:
    plain = await gateway.ready_service(spec("plain"))
    await gateway.ready_service(spec("llm", openai=True))
    other_key = await create_tenant_with_key(gateway.desk.store, "other", balance=10.0)
    async with gateway.client() as http:
        for ref in ("plain", plain, "nothing", "svc_0000"):
            r = await http.post(f"/v1/openai/{ref}/v1/chat/completions", json={})
            assert r.status_code == 404, (ref, r.text)
        # the same service by invoke still works: openai only adds routes
        assert (await http.get(f"/v1/services/{plain}/invoke/v1/models")).status_code == 200
        stranger = await http.get(
            "/v1/openai/llm/v1/models", headers={"authorization": f"Bearer {other_key}"}
        )
        assert stranger.status_code == 404
