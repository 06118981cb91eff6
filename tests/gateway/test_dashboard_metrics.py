"""The gateway's Prometheus registry: requests by route template and status, latencies, error
reasons, and the job and lease series, in Prometheus' text format. It is served on
``metrics_port`` at 127.0.0.1 only, never on the public port (unauthenticated)."""

from __future__ import annotations

import re

import httpx
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from byteleap import metrics
from byteleap.config import GatewaySettings
from byteleap.gateway.rest import create_rest_app
from gateway.live import ALICE_KEY, tenants


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _exposition() -> str:
    """What ``metrics_port`` serves: the process registry in the text format."""
    return generate_latest(metrics.REGISTRY).decode()


@pytest.mark.adversarial
async def test_the_public_port_serves_no_metrics() -> None:
    app = create_rest_app(tenants())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as api:
        for path in ("/metrics", "/metrics/"):
            response = await api.get(path)
            assert response.status_code == 404
            assert "byteleap_gateway" not in response.text
    assert GatewaySettings().metrics_port is None  # off unless the operator sets it


async def test_gateway_metrics_count_requests_errors_and_latency() -> None:
    app = create_rest_app(tenants())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as api:
        before = _samples(_exposition())
        for _ in range(3):
            assert (await api.get("/v1/health")).status_code == 200
        assert (await api.get("/v1/jobs/some-id")).status_code == 401
        alice = {"Authorization": f"Bearer {ALICE_KEY}"}
        assert (await api.get("/v1/jobs/missing", headers=alice)).status_code == 404
        assert (await api.get("/nowhere")).status_code == 404
    text = _exposition()
    after = _samples(text)

    def grew(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    requests = "byteleap_gateway_requests_total"
    assert grew(requests, method="GET", route="/v1/health", status="200") == 3
    # the route template, never the id: labels stay few
    assert grew(requests, method="GET", route="/v1/jobs/{job_id}", status="401") == 1
    assert grew(requests, method="GET", route="/v1/jobs/{job_id}", status="404") == 1
    assert grew(requests, method="GET", route="unmatched", status="404") == 1
    assert not re.search(r'route="/v1/jobs/(some-id|missing)"', text)
    latency = "byteleap_gateway_request_seconds_count"
    assert grew(latency, method="GET", route="/v1/health") == 3
    assert grew("byteleap_gateway_errors_total", reason="unauthorized") == 1
    assert grew("byteleap_gateway_errors_total", reason="not_found") == 2
    for series in (
        "byteleap_gateway_jobs",
        "byteleap_gateway_job_start_seconds",
        "byteleap_gateway_job_seconds",
        "byteleap_gateway_leases",
        "byteleap_validator_challenge_seconds",
        "byteleap_miner_request_seconds",
    ):
        assert re.search(rf"^# TYPE {series}(_total)? ", text, re.M), series
