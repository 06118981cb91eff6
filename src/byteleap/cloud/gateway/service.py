"""The real `CloudService`: jobs kept in the store, placed on miners' workers, watched to the end.

Two loops drive it: *dispatch* places queued jobs on idle workers (fair across
tenants, through the scheduler's `place`), *monitor* follows every scheduled or
running job on its miner. A job runs on the miner under ``<job id>-a<attempt>``
and only the current attempt is ever read, so a worker that was given up on
cannot complete a job a second time: each job completes exactly once.

Billing: a job needs a balance that covers its worst case (price × timeout); it is
charged for the seconds it ran at the price of the worker it ran on.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from byteleap.cloud.executors import ExecutionSpec
from byteleap.cloud.gateway.errors import (
    Conflict,
    NoCapacity,
    NotFound,
    PaymentRequired,
    QuotaExceeded,
    Unauthorized,
)
from byteleap.cloud.gateway.leasing import LeaseDesk
from byteleap.cloud.gateway.miners import MinerPool
from byteleap.cloud.gateway.models import (
    JobSpec,
    JobState,
    JobView,
    LeaseSpec,
    LeaseView,
    LogEntry,
)
from byteleap.cloud.gateway.port import Tenant
from byteleap.cloud.scheduler import FairQueue, NoPlacement, Requirements, WorkerOffer, place
from byteleap.config import GatewaySettings
from byteleap.net.messages import JobRequest
from byteleap.net.messages import JobState as MinerJobState
from byteleap.store import IllegalTransition, RecordNotFound, Store
from byteleap.store.cloud import (
    JobRecord,
    add_api_key,
    advance_job,
    charge,
    count_jobs,
    create_tenant,
    get_job,
    get_tenant,
    insert_job,
    list_jobs,
    tenant_by_key_hash,
    update_job,
)
from byteleap.validator.miner_client import MinerCallError

log = logging.getLogger(__name__)

KEY_PREFIX = "blk_"
ACTIVE = (JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING)
_FINAL_OF_MINER = {
    MinerJobState.SUCCEEDED: JobState.SUCCEEDED,
    MinerJobState.FAILED: JobState.FAILED,
    MinerJobState.TIMED_OUT: JobState.TIMED_OUT,
    MinerJobState.CANCELLED: JobState.CANCELLED,
}


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


async def create_tenant_with_key(store: Store, name: str, *, balance: float) -> str:
    """A new tenant and its first API key; the key is shown once and stored hashed."""
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with store.session() as s:
        tenant = await create_tenant(s, name, balance=balance, at=int(time.time()))
        await add_api_key(s, tenant.id, hash_key(api_key), at=int(time.time()))
    return api_key


def requirements_of(spec: JobSpec) -> Requirements:
    r = spec.resources
    return Requirements(
        gpu_count=r.gpu_count,
        gpu_model=r.gpu_model,
        min_vram_mib=r.min_vram_mib,
        cpu_cores=r.cpu_cores,
        ram_mib=r.ram_mib,
        max_price_per_s=spec.max_price_per_s,
    )


def worst_price_per_s(spec: JobSpec, settings: GatewaySettings) -> float:
    """The most the job can cost per second anywhere (what its balance must cover)."""
    if spec.max_price_per_s is not None:
        return spec.max_price_per_s
    r = spec.resources
    if r.gpu_count:
        prices = settings.price_per_gpu_s
        model_price = prices.get(r.gpu_model or "", max(prices.values(), default=0.0))
        return r.gpu_count * model_price
    return r.cpu_cores * settings.price_per_cpu_s


def view_of(job: JobRecord) -> JobView:
    return JobView(
        id=job.id,
        state=job.state,
        spec=JobSpec.model_validate_json(job.spec_json),
        attempts=job.attempts,
        worker_id=job.worker_id,
        miner_hotkey=job.miner_hotkey,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        exit_code=job.exit_code,
        stdout_tail=job.stdout_tail,
        stderr_tail=job.stderr_tail,
        error=job.error,
        cost=job.cost,
    )


def _tenant(record: object) -> Tenant:
    return Tenant.model_validate(record, from_attributes=True)


@dataclass
class GatewayService:
    store: Store
    pool: MinerPool
    settings: GatewaySettings
    clock: Callable[[], float] = time.time
    # job id -> workers it already failed on (never placed there again)
    failed_on: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    # leases need the gateway's signing key; without one the service offers jobs only
    leasing: LeaseDesk | None = None

    # -- the port -----------------------------------------------------------------------

    async def authenticate(self, api_key: str) -> Tenant:
        async with self.store.session() as s:
            tenant = await tenant_by_key_hash(s, hash_key(api_key))
        if tenant is None:
            raise Unauthorized("unknown or revoked API key")
        return _tenant(tenant)

    async def submit_job(self, tenant: Tenant, spec: JobSpec) -> JobView:
        worst = worst_price_per_s(spec, self.settings) * spec.timeout_s
        async with self.store.session() as s:
            fresh = await get_tenant(s, tenant.id)
            if await count_jobs(s, tenant.id, ACTIVE) >= fresh.max_queued_jobs:
                raise QuotaExceeded(f"at most {fresh.max_queued_jobs} unfinished jobs")
            if fresh.balance < worst:
                raise PaymentRequired(
                    f"balance {fresh.balance:.6f} does not cover the job's worst case "
                    f"{worst:.6f} (price × timeout)"
                )
            record = JobRecord(
                id="job_" + secrets.token_hex(12),
                tenant_id=tenant.id,
                state=JobState.QUEUED,
                spec_json=spec.model_dump_json(),
                idempotency_key=spec.idempotency_key,
                attempts=0,
                worker_id=None,
                miner_hotkey=None,
                created_at=self.clock(),
                started_at=None,
                finished_at=None,
                exit_code=None,
                stdout_tail="",
                stderr_tail="",
                error=None,
                cost=0.0,
            )
            job, _ = await insert_job(s, record)
        return view_of(job)

    async def _own_job(self, tenant: Tenant, job_id: str) -> JobRecord:
        try:
            async with self.store.session() as s:
                return await get_job(s, job_id, tenant_id=tenant.id)
        except RecordNotFound:
            raise NotFound(f"no job {job_id}") from None

    async def get_job(self, tenant: Tenant, job_id: str) -> JobView:
        return view_of(await self._own_job(tenant, job_id))

    async def list_jobs(self, tenant: Tenant, *, limit: int = 100) -> list[JobView]:
        async with self.store.session() as s:
            jobs = await list_jobs(s, tenant_id=tenant.id, limit=max(1, min(limit, 1000)))
        return [view_of(j) for j in jobs]

    async def cancel_job(self, tenant: Tenant, job_id: str) -> JobView:
        job = await self._own_job(tenant, job_id)
        if job.state.is_terminal:
            raise Conflict(f"job {job_id} already ended ({job.state.value})")
        if job.state is not JobState.QUEUED and job.miner_hotkey is not None:
            try:
                client = await self.pool.client(job.miner_hotkey)
                await client.cancel_job(_miner_job_id(job))
            except MinerCallError as exc:  # it is over for the customer either way
                log.warning("cancel not delivered", extra={"job": job_id, "why": exc.reason})
        return view_of(await self._finish(job, JobState.CANCELLED, error="cancelled by the tenant"))

    async def job_logs(
        self, tenant: Tenant, job_id: str, *, after: int = 0, follow: bool = False
    ) -> AsyncIterator[LogEntry]:
        job = await self._own_job(tenant, job_id)
        while True:
            if job.miner_hotkey is not None and job.attempts > 0:
                try:
                    client = await self.pool.client(job.miner_hotkey)
                    page = await client.job_logs(
                        _miner_job_id(job), after=after, wait_s=10.0 if follow else 0.0
                    )
                except MinerCallError:
                    page = None
                if page is not None:
                    for line in page.lines:
                        yield LogEntry(seq=line.seq, stream=line.stream, line=line.line, ts=line.ts)
                        after = line.seq + 1
                    if page.done and job.state.is_terminal:
                        return
            if not follow or (job.state.is_terminal and job.attempts == 0):
                return
            await asyncio.sleep(0.2)
            job = await self._own_job(tenant, job_id)

    # -- leases (see leasing.py) ------------------------------------------------------------

    def _desk(self) -> LeaseDesk:
        if self.leasing is None:
            raise NoCapacity("this gateway does not offer leases (no signing key)")
        return self.leasing

    async def create_lease(self, tenant: Tenant, spec: LeaseSpec) -> LeaseView:
        return await self._desk().create(tenant, spec)

    async def get_lease(self, tenant: Tenant, lease_id: str) -> LeaseView:
        return await self._desk().get(tenant, lease_id)

    async def list_leases(self, tenant: Tenant, *, limit: int = 100) -> list[LeaseView]:
        return await self._desk().list(tenant, limit=limit)

    async def extend_lease(self, tenant: Tenant, lease_id: str, seconds: float) -> LeaseView:
        return await self._desk().extend(tenant, lease_id, seconds)

    async def release_lease(self, tenant: Tenant, lease_id: str) -> LeaseView:
        return await self._desk().release(tenant, lease_id)

    # -- dispatch and monitor -------------------------------------------------------------

    async def dispatch_once(self) -> int:
        """Place queued jobs on idle workers, fairly across tenants; returns how many."""
        async with self.store.session() as s:
            queued = await list_jobs(s, states=[JobState.QUEUED], limit=1000, oldest_first=True)
        if not queued:
            return 0
        fair: FairQueue[JobRecord] = FairQueue()
        for job in queued:
            fair.enqueue(str(job.tenant_id), job.id, job)
        idle = {o.key: o for o in await self.pool.offers() if o.state == "idle"}
        placed = 0
        while idle and len(fair):
            entry = fair.dequeue()
            if entry is None:
                break
            job = entry.item
            spec = JobSpec.model_validate_json(job.spec_json)
            choice = place(
                requirements_of(spec),
                list(idle.values()),
                exclude=self.failed_on.get(job.id, set()),
            )
            if isinstance(choice, NoPlacement):
                continue
            offer = idle.pop(choice.worker.key)
            if await self._start_attempt(job, spec, offer, choice.price_per_s):
                placed += 1
        return placed

    async def _start_attempt(
        self, job: JobRecord, spec: JobSpec, offer: WorkerOffer, price_per_s: float
    ) -> bool:
        attempt = job.attempts + 1
        async with self.store.session() as s:
            job = await advance_job(
                s,
                job.id,
                JobState.SCHEDULED,
                at=self.clock(),
                attempts=attempt,
                worker_id=offer.worker_id,
                miner_hotkey=offer.miner_hotkey,
            )
        request = JobRequest(
            job_id=_miner_job_id(job),
            attempt=attempt,
            worker_id=offer.worker_id,
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
        try:
            client = await self.pool.client(offer.miner_hotkey)
            await client.submit_job(request)
        except MinerCallError as exc:
            await self._retry_or_fail(job, f"not started on {offer.worker_id}: {exc.reason}")
            return False
        async with self.store.session() as s:
            await advance_job(
                s,
                job.id,
                JobState.RUNNING,
                at=self.clock(),
                started_at=self.clock(),
                price_per_s=price_per_s,
            )
        log.info("job running", extra={"job": job.id, "worker": offer.worker_id})
        return True

    async def monitor_once(self) -> None:
        async with self.store.session() as s:
            active = await list_jobs(s, states=[JobState.SCHEDULED, JobState.RUNNING], limit=10000)
        await asyncio.gather(*(self._follow_once(job) for job in active))

    async def _follow_once(self, job: JobRecord) -> None:
        try:
            await self._follow(job)
        except IllegalTransition:
            # Another pass (a cancel, or a second gateway on the same store) moved the job
            # first; its transaction, charge included, was rolled back. Nothing to do.
            log.debug("job moved meanwhile", extra={"job": job.id})

    async def _follow(self, job: JobRecord) -> None:
        assert job.miner_hotkey is not None
        try:
            client = await self.pool.client(job.miner_hotkey)
            status = await client.job_status(_miner_job_id(job))
        except MinerCallError as exc:
            if exc.reason in {"unknown_job", "unknown_miner"}:
                await self._retry_or_fail(job, f"miner lost the job ({exc.reason})")
            return  # unreachable for now: the next pass looks again
        if status.state is MinerJobState.RUNNING:
            if job.started_at is not None:
                cost = (self.clock() - job.started_at) * job.price_per_s
                # The job may have ended meanwhile (a cancel): its final cost then stands.
                with contextlib.suppress(IllegalTransition):
                    async with self.store.session() as s:
                        await update_job(s, job.id, cost=cost)
            return
        if status.state in (MinerJobState.LOST, MinerJobState.REFUSED):
            await self._retry_or_fail(job, f"{status.state.value}: {status.detail}")
            return
        result = status.result
        await self._finish(
            job,
            _FINAL_OF_MINER[status.state],
            exit_code=result.exit_code if result else None,
            stdout_tail=result.stdout_tail if result else "",
            stderr_tail=result.stderr_tail if result else "",
            error=(result.detail or None) if result else status.detail,
        )

    async def _retry_or_fail(self, job: JobRecord, why: str) -> None:
        spec = JobSpec.model_validate_json(job.spec_json)
        if job.worker_id and job.miner_hotkey:
            self.failed_on.setdefault(job.id, set()).add((job.miner_hotkey, job.worker_id))
        if job.attempts <= spec.retries:
            log.warning("job goes back to the queue", extra={"job": job.id, "why": why})
            async with self.store.session() as s:
                await advance_job(s, job.id, JobState.QUEUED, at=self.clock(), error=why)
        else:
            await self._finish(job, JobState.FAILED, error=f"gave up after {job.attempts}: {why}")

    async def _finish(self, job: JobRecord, state: JobState, **fields: object) -> JobRecord:
        now = self.clock()
        seconds = now - job.started_at if job.started_at is not None else 0.0
        cost = seconds * job.price_per_s
        self.failed_on.pop(job.id, None)
        async with self.store.session() as s:
            charged = await charge(s, job.tenant_id, cost, reason="job", job_id=job.id, at=now)
            return await advance_job(s, job.id, state, at=now, cost=charged, **fields)

    async def run(self) -> None:
        """Dispatch and monitor until cancelled."""
        while True:
            try:
                await self.monitor_once()
                await self.dispatch_once()
                if self.leasing is not None:
                    await self.leasing.bill_once()
            except Exception:  # one bad pass must not stop the gateway
                log.exception("dispatch pass failed")
            await asyncio.sleep(self.settings.dispatch_interval_s)


def _miner_job_id(job: JobRecord) -> str:
    return f"{job.id}-a{job.attempts}"
