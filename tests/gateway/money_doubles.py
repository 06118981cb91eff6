"""Doubles for the gateway's money tests: a clock, and one miner with many idle one-core CPU
workers that takes jobs and reports each one ended by its worker's signed run times. What is
under test with them is the gateway's billing and the store's money, which are real."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from byteleap.gateway.scheduler import WorkerOffer
from byteleap.net.job_times import sign_job_times
from byteleap.net.messages import JobRequest, JobStatus, RunState
from byteleap.protocol.execution import ExecutionResult, ExecutionState

T0 = 1_700_000_000.0
PRICE = 0.001  # per core-second on the doubles' worker


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class SignedMiner:
    """One miner's double: takes jobs, and reports each one ended after ``ran_s`` by its
    worker's signed times once ``ended`` names it."""

    key: Ed25519PrivateKey
    started: dict[str, JobRequest] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    sign_with: Ed25519PrivateKey | None = None

    async def submit_job(self, request: JobRequest) -> None:
        self.started[request.job_id] = request

    async def cancel_job(self, job_id: str) -> None:
        self.ended.setdefault(job_id, 0.0)

    async def job_status(self, job_id: str) -> JobStatus:
        request = self.started[job_id]
        if job_id not in self.ended:
            return JobStatus(
                job_id=job_id,
                attempt=request.attempt,
                worker_id=request.worker_id,
                state=RunState.RUNNING,
            )
        began = datetime.fromtimestamp(T0, UTC)
        ended = datetime.fromtimestamp(T0 + self.ended[job_id], UTC)
        signer = self.sign_with or self.key
        times = sign_job_times(
            signer.sign,
            job_id=job_id,
            attempt=request.attempt,
            worker_id=request.worker_id,
            started_at=began,
            finished_at=ended,
        )
        result = ExecutionResult(
            exit_code=0,
            state=ExecutionState.SUCCEEDED,
            stdout_tail="",
            stderr_tail="",
            stdout_dropped_bytes=0,
            stderr_dropped_bytes=0,
            started_at=began,
            finished_at=ended,
            artifacts=[],
        )
        return JobStatus(
            job_id=job_id,
            attempt=request.attempt,
            worker_id=request.worker_id,
            state=RunState.SUCCEEDED,
            result=result,
            times=times,
        )


class CpuSupply:
    """One miner with many idle one-core CPU workers, each with the miner's worker key."""

    def __init__(self, workers: int = 64, more: list[WorkerOffer] | None = None) -> None:
        self.miner = SignedMiner(Ed25519PrivateKey.generate())
        public = self.miner.key.public_key().public_bytes_raw().hex()
        self._offers = (more or []) + [
            WorkerOffer(
                miner_hotkey="miner-a",
                worker_id=f"w-{i:016x}",
                state="idle",
                cpu_cores=1,
                ram_mib=1024,
                region="local",
                price_per_cpu_s=PRICE,
                public_key=public,
            )
            for i in range(workers)
        ]

    async def offers(self) -> list[WorkerOffer]:
        return list(self._offers)

    async def client(self, hotkey: str) -> Any:
        return self.miner

    async def close(self) -> None:
        return None
