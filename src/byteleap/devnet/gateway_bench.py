"""`byteleap bench gateway`: submit → running latency and throughput of the real gateway.

Everything is real — the store, the service, the dispatcher, the scheduler's
placement over every offer, the process executor running each job — except the
miners and their workers: ``workers`` simulated CPU workers answer in-process
instead of over HTTPS (labelled ``simulated_workers`` in the output), so the
benchmark measures the gateway, not the network.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byteleap.config import GatewaySettings
from byteleap.devnet.network import drop_postgres, fresh_postgres
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leadership import Leadership
from byteleap.gateway.scheduler import WorkerOffer, WorkerState
from byteleap.net.messages import (
    ArtifactPiece,
    CheckpointSet,
    JobLogs,
    JobRequest,
    JobStatus,
    LeaseRequest,
    LeaseStatus,
    RunState,
)
from byteleap.net.receipts import LeaseReceipt
from byteleap.protocol.api import JobSpec, JobState, Resources
from byteleap.store import open_store, upgrade
from byteleap.store.cloud import JobRecord, list_jobs
from byteleap.worker.executors import Execution, ExecutionState, ProcessExecutor

_STATE = {
    ExecutionState.SUCCEEDED: RunState.SUCCEEDED,
    ExecutionState.FAILED: RunState.FAILED,
    ExecutionState.TIMED_OUT: RunState.TIMED_OUT,
    ExecutionState.CANCELLED: RunState.CANCELLED,
}


class SimulatedMinerError(Exception):
    pass


@dataclass
class SimulatedMiner:
    """One miner's job API, in-process; jobs really run through the process executor."""

    hotkey: str
    root: Path
    executor: ProcessExecutor = field(default_factory=ProcessExecutor)
    runs: dict[str, tuple[JobRequest, Execution]] = field(default_factory=dict)
    busy: set[str] = field(default_factory=set)

    async def submit_job(self, request: JobRequest) -> JobStatus:
        execution = await self.executor.start(request.spec, self.root / request.job_id)
        self.runs[request.job_id] = (request, execution)
        self.busy.add(request.worker_id)
        return self._status(request, RunState.RUNNING)

    async def job_status(self, job_id: str) -> JobStatus:
        request, execution = self.runs[job_id]
        task = asyncio.ensure_future(execution.wait())
        await asyncio.sleep(0)
        if not task.done():
            task.cancel()
            return self._status(request, RunState.RUNNING)
        result = task.result()
        self.busy.discard(request.worker_id)
        return self._status(request, _STATE[result.state]).model_copy(update={"result": result})

    def _status(self, request: JobRequest, state: RunState) -> JobStatus:
        return JobStatus(
            job_id=request.job_id, attempt=request.attempt, worker_id=request.worker_id, state=state
        )

    async def job_logs(self, job_id: str, *, after: int = 0, wait_s: float = 0.0) -> JobLogs:
        return JobLogs(job_id=job_id, lines=[], done=True)

    async def cancel_job(self, job_id: str) -> JobStatus:
        _, execution = self.runs[job_id]
        await execution.cancel()
        return await self.job_status(job_id)

    async def read_artifact(
        self, job_id: str, path: str, *, offset: int = 0, length: int = 1 << 20
    ) -> ArtifactPiece:
        raise SimulatedMinerError("the gateway benchmark keeps no artifacts")

    async def drop_artifacts(self, job_id: str) -> JobStatus:
        return await self.job_status(job_id)

    async def read_checkpoint(self, job_id: str) -> CheckpointSet:
        raise SimulatedMinerError("the gateway benchmark keeps no checkpoints")

    async def start_lease(self, request: LeaseRequest) -> LeaseStatus:
        raise SimulatedMinerError("the gateway benchmark does not lease")

    async def extend_lease(self, lease_id: str, ends_at: float) -> LeaseStatus:
        raise SimulatedMinerError("the gateway benchmark does not lease")

    async def release_lease(self, lease_id: str) -> LeaseStatus:
        raise SimulatedMinerError("the gateway benchmark does not lease")

    async def countersign(self, receipt: LeaseReceipt) -> LeaseReceipt:
        raise SimulatedMinerError("the gateway benchmark does not lease")


@dataclass
class SimulatedSupply:
    """``workers`` CPU workers on ``miners`` simulated miners."""

    workers: int
    root: Path
    per_miner: int = 100
    miners: dict[str, SimulatedMiner] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for m in range(-(-self.workers // self.per_miner)):
            hotkey = f"5SimulatedMiner{m:04d}"
            self.miners[hotkey] = SimulatedMiner(hotkey, self.root / hotkey)

    async def offers(self) -> list[WorkerOffer]:
        offers = []
        for index in range(self.workers):
            miner = self.miners[f"5SimulatedMiner{index // self.per_miner:04d}"]
            worker_id = f"w-{index:016x}"
            idle = worker_id not in miner.busy
            offers.append(
                WorkerOffer(
                    miner_hotkey=miner.hotkey,
                    worker_id=worker_id,
                    state=WorkerState.IDLE if idle else WorkerState.BUSY,
                    cpu_cores=2,
                    ram_mib=4096,
                    region="local",
                    price_per_cpu_s=0.00001,
                )
            )
        return offers

    async def client(self, hotkey: str) -> SimulatedMiner:
        return self.miners[hotkey]

    async def close(self) -> None:
        return None


BENCH_DATABASE = "postgresql+asyncpg://postgres@127.0.0.1:5432/byteleap_gateway_bench"


@asynccontextmanager
async def _bench_store(kind: str, root: Path) -> AsyncIterator[str]:
    """A store URL for one run: a SQLite file under ``root`` or a fresh PostgreSQL database
    (dropped afterwards)."""
    if kind == "sqlite":
        url = f"sqlite+aiosqlite:///{root / 'gateway.db'}"
        await upgrade(url)
        yield url
        return
    url = await fresh_postgres(BENCH_DATABASE)
    try:
        yield url
    finally:
        await drop_postgres(url)


async def run_gateway_bench(
    workers: int, jobs: int, rate_per_s: float, *, store: str = "sqlite", replicas: int = 1
) -> dict[str, Any]:
    """Submit ``jobs`` at ``rate_per_s`` spread over ``replicas`` gateways on one store
    (more than one: PostgreSQL, one of them running the passes), wait for all to end."""
    if replicas > 1 and store != "postgres":
        raise ValueError("gateway replicas share a PostgreSQL store")
    with tempfile.TemporaryDirectory(prefix="byteleap-bench-") as tmp:
        root = Path(tmp)
        async with _bench_store(store, root) as url:
            supply = SimulatedSupply(workers, root / "runs")
            settings = GatewaySettings(dispatch_interval_s=0.02)
            stores = [await open_store(url) for _ in range(replicas)]
            services = [
                GatewayService(
                    s, supply, settings, leadership=Leadership(s) if replicas > 1 else None
                )
                for s in stores
            ]
            loops = [asyncio.create_task(service.run()) for service in services]
            try:
                done, elapsed = await _drive(services, jobs, rate_per_s)
            finally:
                for service in services:
                    service.stop()
                await asyncio.gather(*loops)
                for opened in stores:
                    await opened.close()
    latencies = sorted(j.started_at - j.created_at for j in done if j.started_at is not None)
    succeeded = sum(1 for j in done if j.state is JobState.SUCCEEDED)
    return {
        "simulated_workers": workers,
        "store": store,
        "replicas": replicas,
        "jobs": jobs,
        "submit_rate_per_s": rate_per_s,
        "succeeded": succeeded,
        "submit_to_running_p50_s": round(statistics.median(latencies), 4) if latencies else None,
        "submit_to_running_p99_s": (
            round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))], 4)
            if latencies
            else None
        ),
        "jobs_per_min": round(succeeded / elapsed * 60.0, 1),
        "seconds": round(elapsed, 2),
    }


async def _drive(
    services: list[GatewayService], jobs: int, rate_per_s: float
) -> tuple[list[JobRecord], float]:
    store = services[0].store
    tenant = await services[0].authenticate(
        await create_tenant_with_key(store, "bench", balance=1e6)
    )
    spec = JobSpec(command=["/bin/true"], timeout_s=60, resources=Resources(ram_mib=64))
    started = time.perf_counter()
    for k in range(jobs):
        await services[k % len(services)].submit_job(tenant, spec)  # any replica serves the API
        await asyncio.sleep(max(0.0, started + (k + 1) / rate_per_s - time.perf_counter()))
    deadline = time.monotonic() + 120
    while True:
        async with store.session() as s:
            pending = len(
                await list_jobs(
                    s, states=[JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING], limit=jobs
                )
            )
        if pending == 0 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    elapsed = time.perf_counter() - started
    async with store.session() as s:
        return await list_jobs(s, limit=jobs), elapsed


async def run_gateway_ramp(
    workers: int,
    rates: list[float],
    seconds_per_step: float,
    *,
    store: str = "sqlite",
    replicas: int = 1,
    p99_target_s: float = 1.0,
) -> dict[str, Any]:
    """Raise the submission rate step by step (a fresh store each) until p99 submit→running
    passes ``p99_target_s``; the highest rate that kept it is the ceiling."""
    steps: list[dict[str, Any]] = []
    for rate in sorted(rates):
        jobs = max(10, round(rate * seconds_per_step))
        result = await run_gateway_bench(workers, jobs, rate, store=store, replicas=replicas)
        steps.append(result)
        p99 = result["submit_to_running_p99_s"]
        if p99 is None or p99 > p99_target_s or result["succeeded"] < jobs:
            break
    kept = [
        r
        for r in steps
        if r["submit_to_running_p99_s"] is not None
        and r["submit_to_running_p99_s"] <= p99_target_s
        and r["succeeded"] == r["jobs"]
    ]
    best = max(kept, key=lambda r: r["submit_rate_per_s"]) if kept else None
    return {
        "simulated_workers": workers,
        "store": store,
        "replicas": replicas,
        "p99_target_s": p99_target_s,
        "ceiling_jobs_per_min": None if best is None else round(best["submit_rate_per_s"] * 60),
        "steps": steps,
    }
