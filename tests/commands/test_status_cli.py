"""`byteleap status` against a real gateway app (uvicorn on loopback) over a seeded store."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable

import pytest
import uvicorn
from typer.testing import CliRunner, Result

from byteleap.cli import app
from byteleap.gateway.network import NetworkView
from byteleap.gateway.rest import create_rest_app
from byteleap.store import open_store, upgrade
from gateway.dashboard_seed import ALPHA, BETA, EXPECTED, seed_network
from gateway.live import tenants
from gateway.test_dashboard_api import _metagraph


async def _serve(app_: object, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    config = uvicorn.Config(app_, host="127.0.0.1", port=port, log_level="error", lifespan="off")  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    async with asyncio.timeout(20):
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await asyncio.sleep(0.05)
    return server, task


@pytest.fixture
async def gateway(sqlite_url: str, free_port: Callable[[], int]) -> AsyncIterator[str]:
    await upgrade(sqlite_url)
    store = await open_store(sqlite_url)
    await seed_network(store, time.time())
    port = free_port()
    rest = create_rest_app(tenants(), network=NetworkView(store, metagraph=_metagraph))
    server, task = await _serve(rest, port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        await store.close()


async def status(*args: str) -> Result:
    # The CLI blocks on HTTP; it runs in a thread while this loop serves the gateway.
    return await asyncio.to_thread(CliRunner().invoke, app, ["status", *args])


async def test_status_json_summarises_the_network(gateway: str) -> None:
    result = await status("--gateway", gateway, "--json", "--top", "2")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["chain"]["block"] == 4242
    assert (summary["miners"], summary["workers"], summary["workers_online"]) == (3, 4, 3)
    assert summary["challenges"]["passed"] == EXPECTED.passed
    assert summary["challenges"]["failed"] == EXPECTED.failed
    assert summary["jobs"] == dict(EXPECTED.jobs) and summary["leases"] == dict(EXPECTED.leases)
    assert [(m["hotkey"], m["weight"]) for m in summary["top_weights"]] == [
        (ALPHA, 0.75),
        (BETA, 0.25),
    ]


async def test_status_table(gateway: str) -> None:
    result = await status("--gateway", gateway)
    assert result.exit_code == 0, result.output
    text = " ".join(result.stdout.split())
    assert "4242 (netuid 1)" in text
    assert "3 online / 4" in text
    assert "12 passed, 4 failed (2 wrong) in 180 min: pass rate 75.0%" in text
    assert "queued 1, running 1, succeeded 2" in text
    assert "0.7500" in text


async def test_status_without_a_gateway_is_one_line_and_exit_1(
    free_port: Callable[[], int],
) -> None:
    port = free_port()
    result = await status("--gateway", f"http://127.0.0.1:{port}/")
    assert result.exit_code == 1
    assert result.output == (
        f"error: cannot reach the gateway at http://127.0.0.1:{port}: connection refused "
        "(is the gateway running at that address?)\n"
    )
