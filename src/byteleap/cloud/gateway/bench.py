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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from byteleap.cloud.executors import Execution, ExecutionState, ProcessExecutor
from byteleap.cloud.gateway.models import JobSpec, JobState
from byteleap.cloud.gateway.service import GatewayService, create_tenant_with_key
from byteleap.cloud.receipts import LeaseReceipt
from byteleap.cloud.scheduler import WorkerOffer, WorkerState
from byteleap.config import GatewaySettings
from byteleap.net.messages import (
    ArtifactPiece,
    JobLogs,
    JobRequest,
    JobStatus,
    LeaseRequest,
    LeaseStatus,
)
from byteleap.net.messages import JobState as MinerJobState
from byteleap.store import open_store, upgrade
from byteleap.store.cloud import list_jobs

_STATE = {
    ExecutionState.SUCCEEDED: MinerJobState.SUCCEEDED,
    ExecutionState.FAILED: MinerJobState.FAILED,
    ExecutionState.TIMED_OUT: MinerJobState.TIMED_OUT,
    ExecutionState.CANCELLED: MinerJobState.CANCELLED,
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
        return self._status(request, MinerJobState.RUNNING)

    async def job_status(self, job_id: str) -> JobStatus:
        request, execution = self.runs[job_id]
        task = asyncio.ensure_future(execution.wait())
        await asyncio.sleep(0)
        if not task.done():
            task.cancel()
            return self._status(request, MinerJobState.RUNNING)
        result = task.result()
        self.busy.discard(request.worker_id)
        return self._status(request, _STATE[result.state]).model_copy(update={"result": result})

    def _status(self, request: JobRequest, state: MinerJobState) -> JobStatus:
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


async def run_gateway_bench(workers: int, jobs: int, rate_per_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="byteleap-bench-") as tmp:
        root = Path(tmp)
        url = f"sqlite+aiosqlite:///{root / 'gateway.db'}"
        await upgrade(url)
        store = await open_store(url)
        settings = GatewaySettings(dispatch_interval_s=0.02)
        service = GatewayService(store, SimulatedSupply(workers, root / "runs"), settings)
        loop = asyncio.create_task(service.run())
        try:
            tenant = await service.authenticate(
                await create_tenant_with_key(store, "bench", balance=1e6)
            )
            spec = JobSpec(command=["/bin/true"], timeout_s=60, resources={"ram_mib": 64})
            started = time.perf_counter()
            for k in range(jobs):
                await service.submit_job(tenant, spec)
                await asyncio.sleep(max(0.0, started + (k + 1) / rate_per_s - time.perf_counter()))
            deadline = time.monotonic() + 120
            while True:
                async with store.session() as s:
                    pending = len(
                        await list_jobs(
                            s,
                            states=[JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING],
                            limit=jobs,
                        )
                    )
                if pending == 0 or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.1)
            elapsed = time.perf_counter() - started
            async with store.session() as s:
                done = await list_jobs(s, limit=jobs)
        finally:
            service.stop()
            await loop
            await store.close()
    latencies = sorted(j.started_at - j.created_at for j in done if j.started_at is not None)
    succeeded = sum(1 for j in done if j.state is JobState.SUCCEEDED)
    return {
        "simulated_workers": workers,
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
