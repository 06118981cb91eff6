"""Dispatch and monitoring: the engine under the gateway's job API.

*Dispatch* places queued jobs on idle workers, fairly across tenants, through the
scheduler's `place` (a job on a lease goes straight to its lease's worker);
*monitor* follows every scheduled or running job on its miner. A job runs on the
miner under ``<job id>-a<attempt>`` and only the current attempt is ever read, so a
worker that was given up on cannot complete a job a second time: each job
completes exactly once. A finished job is charged the seconds it ran at the price
of the worker it ran on (stored with the job, so a restart bills the same).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from byteleap import metrics
from byteleap.cloud.artifacts import RejectedArtifact
from byteleap.cloud.executors import ExecutionSpec
from byteleap.cloud.executors.base import ArtifactInfo, ExecutionResult
from byteleap.cloud.gateway.artifacts import ArtifactVault
from byteleap.cloud.gateway.leasing import LeaseDesk
from byteleap.cloud.gateway.miners import Supply
from byteleap.cloud.gateway.models import JobSpec, JobState, Resources
from byteleap.cloud.scheduler import (
    FairQueue,
    NoPlacement,
    PlacementPass,
    Requirements,
)
from byteleap.config import GatewaySettings
from byteleap.net.messages import JobRequest, JobStatus
from byteleap.net.messages import JobState as MinerJobState
from byteleap.store import IllegalTransition, Store
from byteleap.store.cloud import JobRecord, advance_job, charge, list_jobs, update_job
from byteleap.store.leases import get_lease
from byteleap.validator.miner_client import MinerCallError

log = logging.getLogger(__name__)

START_CONCURRENCY = 32  # attempts of one dispatch pass started at once

_FINAL_OF_MINER = {
    MinerJobState.SUCCEEDED: JobState.SUCCEEDED,
    MinerJobState.FAILED: JobState.FAILED,
    MinerJobState.TIMED_OUT: JobState.TIMED_OUT,
    MinerJobState.CANCELLED: JobState.CANCELLED,
}


def _with_rejections(error: str | None, rejected: list[RejectedArtifact]) -> str | None:
    """The job's error, noting the artifacts the gateway did not keep (listed in full at
    ``GET /v1/jobs/{id}/artifacts``)."""
    if not rejected:
        return error
    first = rejected[0]
    more = f" and {len(rejected) - 1} more" if len(rejected) > 1 else ""
    note = f"artifacts rejected: {first.path} ({first.reason}){more}"
    return f"{error}; {note}" if error else note


def miner_job_id(job: JobRecord) -> str:
    """The job's current attempt as the miner knows it."""
    return f"{job.id}-a{job.attempts}"


class _Sized(Protocol):
    """What placement reads of a job or a service: its resources and its price cap."""

    @property
    def resources(self) -> Resources: ...

    @property
    def max_price_per_s(self) -> float | None: ...


def requirements_of(spec: _Sized) -> Requirements:
    r = spec.resources
    return Requirements(
        gpu_count=r.gpu_count,
        gpu_model=r.gpu_model,
        min_vram_mib=r.min_vram_mib,
        cpu_cores=r.cpu_cores,
        ram_mib=r.ram_mib,
        max_price_per_s=spec.max_price_per_s,
    )


def job_request(
    job_id: str,
    attempt: int,
    worker_id: str,
    spec: JobSpec,
    *,
    lease: str | None = None,
    artifact_limit_bytes: int | None = None,
) -> JobRequest:
    """What a miner is asked to run for one attempt (or re-execution) of ``spec``."""
    return JobRequest(
        job_id=job_id,
        attempt=attempt,
        worker_id=worker_id,
        lease_id=lease,
        artifact_limit_bytes=artifact_limit_bytes,
        executor="container" if spec.image else "process",
        image=spec.image,
        spec=ExecutionSpec(
            command=spec.command,
            env=spec.env,
            inputs=spec.inputs,
            timeout_s=spec.timeout_s,
            memory_limit_mib=spec.resources.ram_mib,
            network=spec.network or ("none" if spec.image else "host"),
        ),
    )


@dataclass(frozen=True)
class _Start:
    """One attempt to start: the job, where, at what price, and the lease it runs on."""

    job: JobRecord
    spec: JobSpec
    where: tuple[str, str]
    price_per_s: float
    lease: str | None = None


@dataclass
class Dispatcher:
    store: Store
    pool: Supply
    settings: GatewaySettings
    leasing: LeaseDesk | None = None
    clock: Callable[[], float] = time.time
    # keeps finished jobs' artifacts; None: the workers send none
    vault: ArtifactVault | None = None
    # told of every job that ended with a result (output validation, see validation.py)
    on_finished: Callable[[JobRecord, ExecutionResult], Awaitable[object]] | None = None
    # job id -> workers it already failed on (never placed there again)
    failed_on: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    # job id -> when its running cost was last written
    cost_shown: dict[str, float] = field(default_factory=dict)

    async def dispatch_once(self) -> int:
        """Place queued jobs on idle workers, fairly across tenants; returns how many."""
        async with self.store.session() as s:
            queued = await list_jobs(s, states=[JobState.QUEUED], limit=1000, oldest_first=True)
        if not queued:
            return 0
        fair: FairQueue[JobRecord] = FairQueue()
        placed = 0
        for job in queued:
            spec = JobSpec.model_validate_json(job.spec_json)
            if spec.lease_id is not None:  # runs on the tenant's own leased worker
                placed += await self._start_on_lease(job, spec, spec.lease_id)
            else:
                fair.enqueue(str(job.tenant_id), job.id, job)
        if not len(fair):
            return placed
        # One snapshot of idle workers per pass; each pick takes its worker out of it.
        idle = PlacementPass([o for o in await self.pool.offers() if o.state == "idle"])
        starts: list[_Start] = []
        while idle.available and len(fair):
            entry = fair.dequeue()
            if entry is None:
                break
            job = entry.item
            spec = JobSpec.model_validate_json(job.spec_json)
            choice = idle.place(requirements_of(spec), exclude=self.failed_on.get(job.id, set()))
            if isinstance(choice, NoPlacement):
                continue
            idle.take(choice.key)
            starts.append(_Start(job, spec, choice.key, choice.price_per_s))
        return placed + await self._start_attempts(starts)

    async def _start_on_lease(self, job: JobRecord, spec: JobSpec, lease_id: str) -> int:
        async with self.store.session() as s:
            lease = await get_lease(s, lease_id, tenant_id=job.tenant_id)
        if lease.state.is_terminal or self.leasing is None:
            await self.finish(job, JobState.FAILED, error=f"lease {lease_id} is not active")
            return 0
        where = (lease.miner_hotkey, lease.worker_id)
        # The lease is billed by the second already; its jobs cost nothing more.
        started = await self._start_attempt(
            job, spec, where, 0.0, lease=self.leasing.anonymous_id(lease.id)
        )
        return int(started)

    async def _start_attempt(
        self,
        job: JobRecord,
        spec: JobSpec,
        where: tuple[str, str],
        price_per_s: float,
        *,
        lease: str | None = None,
    ) -> bool:
        return await self._start_attempts([_Start(job, spec, where, price_per_s, lease)]) == 1

    async def _start_attempts(self, starts: list[_Start]) -> int:
        """Start attempts: one transaction schedules them all, the miners are asked together
        (bounded, so one slow miner holds back no one), one transaction marks them running.
        Returns how many run. Per-job transactions cost a pass most of its time on SQLite."""
        if not starts:
            return 0
        at = self.clock()
        scheduled: list[tuple[_Start, JobRecord]] = []
        async with self.store.session() as s:
            for start in starts:
                miner_hotkey, worker_id = start.where
                try:
                    record = await advance_job(
                        s,
                        start.job.id,
                        JobState.SCHEDULED,
                        at=at,
                        attempts=start.job.attempts + 1,
                        worker_id=worker_id,
                        miner_hotkey=miner_hotkey,
                    )
                except IllegalTransition:  # cancelled since it was read: nothing to start
                    continue
                scheduled.append((start, record))
        gate = asyncio.Semaphore(START_CONCURRENCY)

        async def submit(start: _Start, record: JobRecord) -> bool:
            miner_hotkey, worker_id = start.where
            request = job_request(
                miner_job_id(record),
                record.attempts,
                worker_id,
                start.spec,
                lease=start.lease,
                artifact_limit_bytes=self.vault.limit_bytes if self.vault else None,
            )
            async with gate:
                try:
                    client = await self.pool.client(miner_hotkey)
                    await client.submit_job(request)
                    return True
                except MinerCallError as exc:
                    reason = f"not started on {worker_id}: {exc.reason}"
            await self._retry_or_fail(record, reason)
            return False

        accepted = await asyncio.gather(*(submit(*pair) for pair in scheduled))
        running = [pair for pair, ok in zip(scheduled, accepted, strict=True) if ok]
        now = self.clock()
        started = 0
        async with self.store.session() as s:
            for start, record in running:
                try:
                    await advance_job(
                        s,
                        record.id,
                        JobState.RUNNING,
                        at=now,
                        started_at=now,
                        price_per_s=start.price_per_s,
                    )
                except IllegalTransition:  # cancelled while the miner started it
                    continue
                started += 1
                metrics.GATEWAY_JOB_START_SECONDS.observe(max(0.0, now - record.created_at))
                log.info("job running", extra={"job": record.id, "worker": start.where[1]})
        return started

    async def monitor_once(self) -> None:
        """Ask every miner about its jobs at once, then record what changed one job at a
        time: the endings of one tenant's jobs all touch its balance, and concurrent
        writers to one row only retry against each other."""
        async with self.store.session() as s:
            active = await list_jobs(s, states=[JobState.SCHEDULED, JobState.RUNNING], limit=10000)
        statuses = await asyncio.gather(*(self._status_of(job) for job in active))
        for job, status in zip(active, statuses, strict=True):
            try:
                await self._apply(job, status)
            except IllegalTransition:
                # Another pass (a cancel, or a second gateway on the same store) moved the
                # job first; its transaction, charge included, was rolled back.
                log.debug("job moved meanwhile", extra={"job": job.id})

    async def _status_of(self, job: JobRecord) -> JobStatus | MinerCallError:
        assert job.miner_hotkey is not None
        try:
            client = await self.pool.client(job.miner_hotkey)
            return await client.job_status(miner_job_id(job))
        except MinerCallError as exc:
            return exc

    async def _apply(self, job: JobRecord, status: JobStatus | MinerCallError) -> None:
        if isinstance(status, MinerCallError):
            if status.reason in {"unknown_job", "unknown_miner"}:
                await self._retry_or_fail(job, f"miner lost the job ({status.reason})")
            return  # unreachable for now: the next pass looks again
        if status.state is MinerJobState.RUNNING:
            now = self.clock()
            # The running cost is shown to the tenant, not billed: refreshing it every few
            # seconds is enough and keeps a write off every pass for every job.
            if job.started_at is not None and now - self.cost_shown.get(job.id, 0.0) >= 5.0:
                self.cost_shown[job.id] = now
                cost = (now - job.started_at) * job.price_per_s
                # The job may have ended meanwhile (a cancel): its final cost then stands.
                with contextlib.suppress(IllegalTransition):
                    async with self.store.session() as s:
                        await update_job(s, job.id, cost=cost)
            return
        if status.state in (MinerJobState.LOST, MinerJobState.REFUSED):
            await self._retry_or_fail(job, f"{status.state.value}: {status.detail}")
            return
        result = status.result
        error = (result.detail or None) if result else status.detail
        if result is not None and result.artifacts and self.vault is not None:
            # Kept and recorded before the job is reported finished.
            error = _with_rejections(error, await self._collect(job, result.artifacts))
        ended = await self.finish(
            job,
            _FINAL_OF_MINER[status.state],
            exit_code=result.exit_code if result else None,
            stdout_tail=result.stdout_tail if result else "",
            stderr_tail=result.stderr_tail if result else "",
            error=error,
        )
        if self.on_finished is not None and result is not None:
            await self.on_finished(ended, result)

    async def _collect(self, job: JobRecord, listing: list[ArtifactInfo]) -> list[RejectedArtifact]:
        assert self.vault is not None and job.miner_hotkey is not None
        try:
            client = await self.pool.client(job.miner_hotkey)
        except MinerCallError as exc:
            why = f"miner unreachable: {exc.reason}"
            return [RejectedArtifact(path=a.path, size=a.size, reason=why) for a in listing]
        return await self.vault.collect(self.store, client, job.id, miner_job_id(job), listing)

    async def _retry_or_fail(self, job: JobRecord, why: str) -> None:
        spec = JobSpec.model_validate_json(job.spec_json)
        if job.worker_id and job.miner_hotkey:
            self.failed_on.setdefault(job.id, set()).add((job.miner_hotkey, job.worker_id))
        if job.attempts <= spec.retries:
            log.warning("job goes back to the queue", extra={"job": job.id, "why": why})
            async with self.store.session() as s:
                await advance_job(s, job.id, JobState.QUEUED, at=self.clock(), error=why)
        else:
            await self.finish(job, JobState.FAILED, error=f"gave up after {job.attempts}: {why}")

    async def finish(self, job: JobRecord, state: JobState, **fields: object) -> JobRecord:
        now = self.clock()
        seconds = now - job.started_at if job.started_at is not None else 0.0
        cost = seconds * job.price_per_s
        self.failed_on.pop(job.id, None)
        self.cost_shown.pop(job.id, None)
        async with self.store.session() as s:
            charged = await charge(s, job.tenant_id, cost, reason="job", job_id=job.id, at=now)
            ended = await advance_job(s, job.id, state, at=now, cost=charged, **fields)
        metrics.GATEWAY_JOBS.labels(state.value).inc()
        metrics.GATEWAY_JOB_SECONDS.observe(seconds)
        return ended
