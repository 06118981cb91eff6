"""A gateway whose service replicas are real HTTP processes on loopback, without a network.

The real `ServiceDesk` (its loop placing, probing and balancing), `LeaseDesk` billing and
store, and the gateway's REST app under uvicorn; the miner is a double that "runs" each
replica it is asked for by reporting the endpoint of a process the test started
(`start_replica`), in turn. What the gateway does with the requests is all real.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from byteleap.config import GatewaySettings, ServiceSettings
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.rest_services import mount_services
from byteleap.gateway.scheduler import WorkerOffer
from byteleap.gateway.service_desk import ServiceDesk
from byteleap.net.messages import JobRequest, JobStatus, RunState
from byteleap.net.receipts import LeaseReceipt, countersign_as_miner
from byteleap.protocol.service_spec import ServiceSpec
from byteleap.store import open_store, upgrade
from net.receipt_samples import GATEWAY, MINER

DATA = Path(__file__).parents[2] / "data" / "services"


@dataclass
class ProcessMiner:
    """Each replica it is asked to run is the next of ``endpoints`` (processes that run)."""

    endpoints: list[str]
    jobs: dict[str, JobRequest] = field(default_factory=dict)
    placed: dict[str, str] = field(default_factory=dict)  # job id -> endpoint

    async def start_lease(self, request: Any) -> None:
        return None

    async def extend_lease(self, lease_id: str, ends_at: float) -> None:
        return None

    async def release_lease(self, lease_id: str) -> None:
        return None

    async def submit_job(self, request: JobRequest) -> None:
        self.jobs[request.job_id] = request
        self.placed[request.job_id] = self.endpoints[(len(self.placed)) % len(self.endpoints)]

    async def cancel_job(self, job_id: str) -> None:
        return None

    async def job_status(self, job_id: str) -> JobStatus:
        request = self.jobs[job_id]
        return JobStatus(
            job_id=job_id, attempt=1, worker_id=request.worker_id, state=RunState.RUNNING,
            endpoint=self.placed[job_id], detail="",
        )  # fmt: skip

    async def countersign(self, receipt: LeaseReceipt) -> LeaseReceipt:
        return countersign_as_miner(receipt, MINER)


@dataclass
class OneMiner:
    miner: ProcessMiner

    async def offers(self) -> list[WorkerOffer]:
        return [
            WorkerOffer(
                miner_hotkey=MINER.ss58_address,
                worker_id=f"w-{i:016x}",
                state="idle",
                cpu_cores=4,
                ram_mib=8192,
                region="local",
                price_per_cpu_s=0.0001,
            )
            for i in range(1, 9)
        ]

    async def client(self, hotkey: str) -> ProcessMiner:
        return self.miner

    async def close(self) -> None:
        return None


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.05)


@contextmanager
def start_replica(script: str, port: int, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run ``tests/data/services/<script>`` (or ``-m module`` when it starts with "-m ") on
    ``port``; its endpoint while the block runs, the process ended after it."""
    args = script.split() if script.startswith("-m ") else [str(DATA / script)]
    process = subprocess.Popen(
        [sys.executable, *args],
        env={**os.environ, **(env or {}), "PORT": str(port)},
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"replica {script} exited {process.returncode}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2, trust_env=False):
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, f"replica {script} never served"
            time.sleep(0.1)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@dataclass
class Gateway:
    url: str
    api_key: str
    desk: ServiceDesk
    miner: ProcessMiner

    def client(self, timeout_s: float = 30) -> httpx.AsyncClient:
        headers = {"authorization": f"Bearer {self.api_key}"}
        return httpx.AsyncClient(
            base_url=self.url, headers=headers, trust_env=False, timeout=timeout_s
        )

    async def ready_service(self, spec: dict[str, Any], replicas: int = 1) -> str:
        """Create the service; its id once ``replicas`` of it are ready."""
        async with self.client() as http:
            created = await http.post("/v1/services", json=spec)
            assert created.status_code == 201, created.text
            service_id: str = created.json()["id"]

            async def ready() -> bool:
                view = (await http.get(f"/v1/services/{service_id}")).json()
                return int(view["ready_replicas"]) >= replicas

            await until(f"{replicas} replicas are ready", ready)
        return service_id


def spec(name: str, replicas: int = 1, **extra: Any) -> dict[str, Any]:
    return ServiceSpec.model_validate(
        {
            "name": name,
            "command": ["python", "server.py"],  # the double runs nothing
            "autoscale": {"min_replicas": replicas, "max_replicas": replicas},
            **extra,
        }
    ).model_dump(mode="json", exclude_none=True)


@asynccontextmanager
async def serving_gateway(
    tmp_path: Path, port: int, endpoints: list[str], **service_settings: Any
) -> AsyncIterator[Gateway]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade(url)
    store = await open_store(url)
    settings = GatewaySettings(
        bill_period_s=5,
        services=ServiceSettings(
            **{"interval_s": 0.1, "health_timeout_s": 2.0, **service_settings}
        ),
    )
    pool = OneMiner(ProcessMiner(endpoints))
    leasing = LeaseDesk(
        store, pool, settings, hotkey=GATEWAY, netuid=1, secret=b"s" * 20, bill_period_s=5
    )
    service = GatewayService(store, pool, settings, leasing=leasing)
    desk = ServiceDesk(store, pool, settings, leasing=leasing)
    app = create_rest_app(service)
    mount_services(app, desk)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    loop = asyncio.create_task(desk.run())
    api_key = await create_tenant_with_key(store, "inference", balance=100.0)

    async def started() -> bool:
        return server.started

    try:
        await until("the gateway serves", started)
        yield Gateway(f"http://127.0.0.1:{port}", api_key, desk, pool.miner)
    finally:
        loop.cancel()
        server.should_exit = True
        await asyncio.gather(loop, serving, return_exceptions=True)
        await desk.close()
        await store.close()
