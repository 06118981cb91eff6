"""The dashboard in headless Chromium: a real gateway app served by uvicorn over a seeded
store; the numbers on the page must be the API's, the charts drawn, no script errors; a
screenshot lands in pytest's tmp dir and in $BYTELEAP_ARTIFACTS_DIR when set."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from byteleap.gateway.network import NetworkView
from byteleap.gateway.rest import create_rest_app
from byteleap.store import open_store, upgrade
from gateway.chromium import find_or_install_chromium, headless
from gateway.dashboard_seed import ALPHA, BETA, GAMMA, seed_network
from gateway.live import tenants
from gateway.test_dashboard_api import _metagraph

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def chromium() -> str:
    path, why = find_or_install_chromium()
    if path is None:
        pytest.skip(why)
    return path


@pytest.fixture
async def gateway_url(sqlite_url: str, free_port: Any) -> AsyncIterator[str]:
    await upgrade(sqlite_url)
    store = await open_store(sqlite_url)
    await seed_network(store, time.time())
    app = create_rest_app(tenants(), network=NetworkView(store, metagraph=_metagraph))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(20):
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
        await store.close()


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def expected_fields(overview: dict[str, Any], miners: dict[str, Any]) -> dict[str, str]:
    """What the page must show, from the API's JSON (the formats of dashboard.js)."""
    fields = {
        "chain.block": str(overview["chain"]["block"]),
        "chain.netuid": str(overview["chain"]["netuid"]),
        "miners": str(overview["miners"]),
        "workers": str(overview["workers"]),
        "workers_online": str(overview["workers_online"]),
        "gpus": str(overview["gpus"]),
        "challenges.passed": str(overview["challenges"]["passed"]),
        "challenges.failed": str(overview["challenges"]["failed"]),
        "challenges.pass_rate": percent(overview["challenges"]["pass_rate"]),
        "availability": percent(overview["availability"]),
    }
    for kind in ("jobs", "leases"):
        fields |= {f"{kind}.{state}": str(n) for state, n in overview[kind].items()}
    for m in miners["miners"]:
        fields[f"miner.{m['hotkey']}.passed"] = str(m["passed"])
        fields[f"miner.{m['hotkey']}.failed"] = str(m["failed"])
        fields[f"miner.{m['hotkey']}.weight"] = f"{m['weight']:.4f}"
        for w in m["worker_list"]:
            fields[f"worker.{w['worker_key']}.measured"] = hardware_cell(w)
    return fields


def hardware_cell(w: dict[str, Any]) -> str:
    """A worker's hardware as claimed, and what its challenges measured (dashboard.js)."""
    if not w["gpus"]:
        cores = "?" if w["cpu_cores"] is None else w["cpu_cores"]
        return f"{cores} CPU cores"
    claimed = ", ".join(g["model"] for g in w["gpus"])
    if w["measured_throughput"] is None:
        return f"{claimed} · not measured yet"
    measured = w["measured_gpu_class"] or "no known GPU"
    refuted = " (claim refuted)" if w["gpu_model_mismatch"] else ""
    return f"{claimed} · measures as {measured}{refuted}"


def save_screenshot(png: bytes, tmp_path: Path) -> None:
    (tmp_path / "dashboard.png").write_bytes(png)
    if artifacts := os.environ.get("BYTELEAP_ARTIFACTS_DIR"):
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        (Path(artifacts) / "dashboard.png").write_bytes(png)


_READ_FIELDS = """(() => {
  const out = {};
  for (const node of document.querySelectorAll("[data-field]")) {
    out[node.dataset.field] = node.textContent;
  }
  return out;
})()"""


async def test_dashboard_shows_the_api_numbers_and_charts(
    chromium: str, gateway_url: str, tmp_path: Path
) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=30) as http:
        overview = (await http.get("/v1/network/overview")).json()
        miners = (await http.get("/v1/network/miners")).json()
        page_html = await http.get("/dashboard")
    assert page_html.status_code == 200 and "text/html" in page_html.headers["content-type"]
    async with headless(chromium, tmp_path / "profile") as page:
        await page.send("Page.navigate", url=f"{gateway_url}/dashboard")
        await page.wait_for("Number(document.body.dataset.loaded) >= 1", timeout_s=60)
        shown = await page.evaluate(_READ_FIELDS)
        bars = await page.evaluate("document.querySelectorAll('#chart-challenges rect').length")
        score_lines = await page.evaluate(
            "document.querySelectorAll('#chart-scores polyline').length"
        )
        weight_lines = await page.evaluate(
            "document.querySelectorAll('#chart-weights polyline').length"
        )
        rows = await page.evaluate("document.querySelectorAll('#miners tbody tr').length")
        error_hidden = await page.evaluate("document.getElementById('error').hidden")
        png = await page.screenshot()
        exceptions, console_errors = page.exceptions, page.console_errors
    save_screenshot(png, tmp_path)

    assert (exceptions, console_errors, error_hidden) == ([], [], True)
    expected = expected_fields(overview, miners)
    assert {k: shown.get(k) for k in expected} == expected
    assert shown["miners"] == "3" and shown["challenges.passed"] == "12"  # not just equal: seeded
    assert shown["worker.a-gpu1.measured"] == "H100 · measures as H100 SXM"
    assert bars > 0
    assert score_lines == 3 and weight_lines == 3  # one line per miner
    assert rows == 3 + 4  # a row per miner and per worker
    assert {ALPHA, BETA, GAMMA} <= {k.split(".")[1] for k in shown if k.startswith("miner.")}
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


async def test_dashboard_assets_and_unknown_asset(gateway_url: str) -> None:
    async with httpx.AsyncClient(base_url=gateway_url, timeout=10) as http:
        js = await http.get("/dashboard/static/charts.js")
        missing = await http.get("/dashboard/static/nope.js")
        spec = (await http.get("/openapi.json")).json()
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "default-src 'self'" in js.headers["content-security-policy"]
    assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
    assert not any(path.startswith("/dashboard") for path in spec["paths"])
