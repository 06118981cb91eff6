"""Inference services against a real network on loopback: chain, miner, four CPU workers and
the gateway's REST app, with a bounded client keeping a steady load through the gateway.

Zero failed requests during a rolling update; a killed worker's traffic moves to the other
replica and a replacement starts; load up scales out, load gone scales in; replicas are
billed with countersigned receipts.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
import uvicorn
from typer.testing import CliRunner

from byteleap.chain.local.client import LocalChain
from byteleap.cli import app
from byteleap.config import GatewaySettings, ServiceSettings
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.miners import MinerPool
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.rest_services import mount_services
from byteleap.gateway.service_desk import ServiceDesk
from byteleap.net.miner_client import MinerClient
from byteleap.protocol.execution import InputFile
from byteleap.protocol.service_spec import ServiceView
from byteleap.sdk import AsyncClient
from byteleap.store import open_store, upgrade
from byteleap.store.receipts import receipts_in_window
from network_fixtures import miner_neuron, wait_for_workers

pytestmark = pytest.mark.slow

SERVER = Path(__file__).parents[2] / "data" / "services" / "replica_server.py"
WORKERS = ("s1", "s2", "s3", "s4")


@pytest.fixture(scope="module")
def service_workers(network: Any) -> dict[str, str]:
    for name in WORKERS:
        network.start_worker(name, network.new_token())

    async def enrolled() -> None:
        async with MinerClient(network.validator, await miner_neuron(network)) as client:
            await wait_for_workers(client, len(WORKERS))

    asyncio.run(enrolled())
    return {
        name: json.loads((network.root / name / "worker_identity.json").read_text())["worker_id"]
        for name in WORKERS
    }


@dataclass
class Gateway:
    url: str
    api_key: str
    desk: ServiceDesk

    def client(self) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {self.api_key}"}
        return httpx.AsyncClient(base_url=self.url, headers=headers, trust_env=False, timeout=15)


@pytest.fixture
async def gateway(
    network: Any, service_workers: dict[str, str], tmp_path: Path, free_port: Callable[[], int]
) -> AsyncIterator[Gateway]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade(url)
    store = await open_store(url)
    settings = GatewaySettings(
        chain={"url": network.chain_url}, metagraph_refresh_s=1.0, bill_period_s=1.0,
        services=ServiceSettings(
            interval_s=0.2, health_timeout_s=1.0, request_timeout_s=10, drain_timeout_s=5,
            load_window_s=1.0, lease_horizon_s=60,
        ),
    )  # fmt: skip
    chain = LocalChain(network.chain_url, timeout_s=5)
    pool = MinerPool(network.validator, chain, settings)
    leasing = LeaseDesk(
        store, pool, settings, hotkey=network.validator.hotkey, netuid=1,
        secret=b"0123456789abcdef0123", bill_period_s=1.0,
    )  # fmt: skip
    service = GatewayService(store, pool, settings, leasing=leasing)
    desk = ServiceDesk(store, pool, settings, leasing=leasing)
    app = create_rest_app(service)
    mount_services(app, desk)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    loop = asyncio.create_task(desk.run())
    api_key = await create_tenant_with_key(store, "inference", balance=100.0)
    await until("the gateway serves", _started(server), timeout_s=10)
    try:
        yield Gateway(f"http://127.0.0.1:{port}", api_key, desk)
    finally:
        loop.cancel()
        server.should_exit = True
        await asyncio.gather(loop, serving, return_exceptions=True)
        await desk.close()
        await pool.close()
        await chain.close()
        await store.close()


def _started(server: uvicorn.Server) -> Callable[[], Awaitable[bool]]:
    async def started() -> bool:
        return server.started

    return started


@dataclass
class SteadyLoad:
    """``clients`` loops, each sending one request at a time: a bounded, steady load."""

    http: httpx.AsyncClient
    path: str
    clients: int = 4
    pause_s: float = 0.02
    ok: list[tuple[float, int, str]] = field(default_factory=list)  # (time, pid, version)
    failed: list[str] = field(default_factory=list)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def _loop(self) -> None:
        while True:
            try:
                r = await self.http.get(self.path)
                if r.status_code == 200:
                    body = r.json()
                    self.ok.append((time.monotonic(), body["pid"], body["version"]))
                else:
                    self.failed.append(f"{r.status_code} {r.text[:200]}")
            except httpx.HTTPError as exc:
                self.failed.append(repr(exc))
            await asyncio.sleep(self.pause_s)

    def __enter__(self) -> SteadyLoad:
        self._tasks = [asyncio.create_task(self._loop()) for _ in range(self.clients)]
        return self

    def __exit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.2)


async def _gone(pid: int) -> bool:
    """No such process, or only a zombie (PID 1 here may not reap orphans)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def deploy(http: httpx.AsyncClient, name: str, **fields: Any) -> ServiceView:
    spec = {
        "name": name,
        "command": [sys.executable, "server.py"],
        "inputs": {"server.py": InputFile(content=SERVER.read_text()).model_dump()},
        "health": {"path": "/health", "start_timeout_s": 30},
        **fields,
    }
    r = await http.post("/v1/services", json=spec)
    assert r.status_code == 201, r.text
    return ServiceView.model_validate(r.json())


async def view(http: httpx.AsyncClient, service_id: str) -> ServiceView:
    r = await http.get(f"/v1/services/{service_id}")
    assert r.status_code == 200, r.text
    return ServiceView.model_validate(r.json())


def live(v: ServiceView) -> list[Any]:
    return [r for r in v.replicas if not r.state.is_terminal]


async def ready(http: httpx.AsyncClient, service_id: str, count: int, revision: int = 1) -> None:
    async def check() -> bool:
        v = await view(http, service_id)
        current = [r for r in live(v) if r.revision == revision and r.health == "ready"]
        return len(current) == count and len(live(v)) == count

    await until(f"{count} replicas of revision {revision} are ready", check)


async def delete(http: httpx.AsyncClient, service_id: str) -> None:
    assert (await http.delete(f"/v1/services/{service_id}")).status_code == 200
    await delete_done(http, service_id)


async def delete_done(http: httpx.AsyncClient, service_id: str) -> None:
    async def gone() -> bool:
        return (await view(http, service_id)).state.value == "deleted"

    await until("the service is deleted", gone)


async def test_a_rolling_update_fails_no_request_and_replicas_are_billed(gateway: Gateway) -> None:
    async with gateway.client() as http:
        svc = await deploy(
            http, "roll", env={"VERSION": "1"},
            autoscale={"min_replicas": 2, "max_replicas": 2},
            rollout={"max_surge": 1, "max_unavailable": 0},
        )  # fmt: skip
        await ready(http, svc.id, 2)
        with SteadyLoad(http, f"/v1/services/{svc.id}/invoke/hello") as load:
            await asyncio.sleep(1.0)
            r = await http.post(f"/v1/services/{svc.id}/update", json={"env": {"VERSION": "2"}})
            assert r.status_code == 200 and r.json()["revision"] == 2
            await ready(http, svc.id, 2, revision=2)
            await asyncio.sleep(1.0)
        assert load.failed == []
        versions = Counter(version for _, _, version in load.ok)
        assert versions["1"] > 20 and versions["2"] > 20, versions
        assert {v for _, _, v in load.ok[-20:]} == {"2"}
        # Requests spread over both replicas (least outstanding takes turns).
        assert len({pid for _, pid, v in load.ok if v == "2"}) == 2

        v = await view(http, svc.id)
        assert all(r.endpoint and r.endpoint.startswith("127.0.0.1:") for r in v.replicas)
        assert v.cost > 0 and sum(r.receipts for r in v.replicas) >= 2
        await delete(http, svc.id)
        # Compared once billing has stopped: read while replicas run, the cost and the
        # receipts could straddle a period billed in between.
        final = await view(http, svc.id)
        assert all(r.state.value == "stopped" for r in final.replicas)
        async with gateway.desk.store.session() as s:
            receipts = await receipts_in_window(s, 0, int(time.time()) + 1)
        assert sum(x.amount_micro for x in receipts) / 1e6 == pytest.approx(final.cost)


async def test_load_scales_out_and_its_absence_scales_in(gateway: Gateway) -> None:
    async with AsyncClient(gateway.url, gateway.api_key) as sdk, gateway.client() as http:
        svc = await sdk.create_service(
            {
                "name": "elastic", "command": [sys.executable, "server.py"],
                "inputs": {"server.py": {"content": SERVER.read_text()}},
                "autoscale": {"min_replicas": 1, "max_replicas": 1, "target_in_flight": 1,
                              "scale_out_cooldown_s": 0, "scale_in_cooldown_s": 2},
            }
        )  # fmt: skip
        await ready(http, svc.id, 1)
        assert (await sdk.invoke(svc.id, "GET", "/hello")).json()["version"] == "1"
        svc = await sdk.scale_service(svc.id, {"max_replicas": 3})
        assert svc.spec.autoscale.max_replicas == 3
        with SteadyLoad(http, f"/v1/services/{svc.id}/invoke/slow?ms=300", clients=6) as load:
            await ready(http, svc.id, 3)
            assert (await view(http, svc.id)).desired_replicas == 3
        assert load.failed == []
        await ready(http, svc.id, 1)
        assert (await view(http, svc.id)).desired_replicas == 1
        # Each replica's log, read from its miner: every one said what it serves on.
        logs = await sdk.service_logs(svc.id)
        assert len(logs.replicas) >= 3
        for replica in logs.replicas:
            said = [x.line for x in replica.lines]
            assert any(line.startswith("serving version 1 on ") for line in said), replica
        first = logs.replicas[0].replica_id
        only = await sdk.service_logs(svc.id, replica=first, after=1)
        assert [r.replica_id for r in only.replicas] == [first]
        assert all(x.seq >= 1 for x in only.replicas[0].lines)
        cli = [svc.id, "--gateway", gateway.url, "--api-key", gateway.api_key]
        printed = await asyncio.to_thread(CliRunner().invoke, app, ["services", "logs", *cli])
        assert printed.exit_code == 0, printed.output
        assert f"{first} | serving version 1 on " in printed.output
        cli.append("--json")
        shown = await asyncio.to_thread(CliRunner().invoke, app, ["services", "get", *cli])
        assert shown.exit_code == 0, shown.output
        assert ServiceView.model_validate_json(shown.output).desired_replicas == 1
        gone = await asyncio.to_thread(CliRunner().invoke, app, ["services", "delete", *cli])
        assert gone.exit_code == 0 and '"deleting"' in gone.output, gone.output
        await delete_done(http, svc.id)


async def test_a_killed_worker_moves_traffic_and_its_replica_is_replaced(
    gateway: Gateway, network: Any, service_workers: dict[str, str]
) -> None:
    async with gateway.client() as http:
        svc = await deploy(http, "sturdy", autoscale={"min_replicas": 2, "max_replicas": 2})
        await ready(http, svc.id, 2)
        before = {r.id for r in live(await view(http, svc.id))}
        with SteadyLoad(http, f"/v1/services/{svc.id}/invoke/hello") as load:
            await asyncio.sleep(1.0)
            victim = live(await view(http, svc.id))[0]
            pids = Counter(pid for _, pid, _ in load.ok[-40:])
            assert len(pids) == 2, pids
            name = next(n for n, wid in service_workers.items() if wid == victim.worker_id)
            killed_at = time.monotonic()
            network.stop(name, signal.SIGKILL)

            async def replaced() -> bool:
                v = await view(http, svc.id)
                fresh = [r for r in live(v) if r.id not in before and r.health == "ready"]
                return len(fresh) == 1 and v.ready_replicas == 2

            await until("a replacement replica is ready", replaced)
            await asyncio.sleep(max(1.0, killed_at + 4.0 - time.monotonic()))
        after_kill = [pid for t, pid, _ in load.ok if t > killed_at + 3.0]
        survivors = {pid for t, pid, _ in load.ok if t < killed_at}
        assert after_kill and len(survivors) == 2
        lost_pid = next(iter(survivors - set(after_kill)), None)
        assert lost_pid is not None, "traffic never left the killed worker's replica"
        # The replica does not outlive its worker (the process executor's guard ends it).
        await until("the lost replica's process is gone", lambda: _gone(lost_pid), timeout_s=5)
        assert load.failed == []
        v = await view(http, svc.id)
        lost = next(r for r in v.replicas if r.id == victim.id)
        assert lost.state.value == "failed" and lost.error
        await delete(http, svc.id)
