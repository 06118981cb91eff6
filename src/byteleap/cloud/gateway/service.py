"""The real `CloudService`: the customer-facing side of jobs and leases.

Tenants, keys, quotas and balances are checked here; placing and following jobs
is the `Dispatcher`'s (dispatch.py), leases the `LeaseDesk`'s (leasing.py).
A job needs a balance that covers its worst case (price × timeout).
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

from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.cloud.artifacts import ArtifactListing, ArtifactView
from byteleap.cloud.gateway.access import ExecChannel
from byteleap.cloud.gateway.artifacts import ArtifactVault
from byteleap.cloud.gateway.dispatch import Dispatcher, miner_job_id
from byteleap.cloud.gateway.errors import (
    Conflict,
    NoCapacity,
    NotFound,
    PaymentRequired,
    QuotaExceeded,
    Unauthorized,
)
from byteleap.cloud.gateway.leasing import LeaseDesk
from byteleap.cloud.gateway.liveness import LeaseWatch
from byteleap.cloud.gateway.miners import Supply
from byteleap.cloud.gateway.models import (
    JobSpec,
    JobState,
    JobView,
    LeaseSpec,
    LeaseView,
    LogEntry,
)
from byteleap.cloud.gateway.port import Tenant
from byteleap.cloud.gateway.validation import OutputValidator, with_validation
from byteleap.config import GatewaySettings
from byteleap.store import RecordNotFound, Store
from byteleap.store.cloud import (
    JobRecord,
    add_api_key,
    count_jobs,
    create_tenant,
    get_job,
    get_tenant,
    insert_job,
    list_jobs,
    tenant_by_key_hash,
)
from byteleap.store.leases import get_lease
from byteleap.validator.miner_client import MinerCallError, MinerClient

log = logging.getLogger(__name__)

KEY_PREFIX = "blk_"
ACTIVE = (JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING)


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


async def create_tenant_with_key(store: Store, name: str, *, balance: float) -> str:
    """A new tenant and its first API key; the key is shown once and stored hashed."""
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with store.session() as s:
        tenant = await create_tenant(s, name, balance=balance, at=int(time.time()))
        await add_api_key(s, tenant.id, hash_key(api_key), at=int(time.time()))
    return api_key


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
    pool: Supply
    settings: GatewaySettings
    clock: Callable[[], float] = time.time
    # leases need the gateway's signing key; without one the service offers jobs only
    leasing: LeaseDesk | None = None
    # where finished jobs' artifacts are kept (None: from the settings)
    vault: ArtifactVault | None = None
    # re-executes deterministic jobs on other miners (None: no output validation)
    validator: OutputValidator | None = None
    # probes every lease (None: leases are billed without liveness probes)
    watch: LeaseWatch | None = None
    dispatcher: Dispatcher = field(init=False)
    _stopping: asyncio.Event = field(init=False, default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        if self.vault is None:
            self.vault = ArtifactVault(
                self.settings.artifacts_path, self.settings.max_job_artifact_bytes
            )
        self.dispatcher = Dispatcher(
            self.store,
            self.pool,
            self.settings,
            leasing=self.leasing,
            clock=self.clock,
            vault=self.vault,
        )
        if self.validator is not None:
            self.dispatcher.on_finished = self.validator.on_job_finished

    # -- the port -----------------------------------------------------------------------

    async def authenticate(self, api_key: str) -> Tenant:
        async with self.store.session() as s:
            tenant = await tenant_by_key_hash(s, hash_key(api_key))
        if tenant is None:
            raise Unauthorized("unknown or revoked API key")
        return _tenant(tenant)

    async def submit_job(self, tenant: Tenant, spec: JobSpec) -> JobView:
        # A job on a lease is covered by the lease's own billing.
        worst = 0.0 if spec.lease_id else worst_price_per_s(spec, self.settings) * spec.timeout_s
        async with self.store.session() as s:
            fresh = await get_tenant(s, tenant.id)
            if spec.lease_id is not None:
                await self._check_lease(s, tenant, spec.lease_id)
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

    async def _check_lease(self, s: AsyncSession, tenant: Tenant, lease_id: str) -> None:
        try:
            lease = await get_lease(s, lease_id, tenant_id=tenant.id)
        except RecordNotFound:
            raise NotFound(f"no lease {lease_id}") from None
        if lease.state.is_terminal:
            raise Conflict(f"lease {lease_id} already ended ({lease.state.value})")

    async def _own_job(self, tenant: Tenant, job_id: str) -> JobRecord:
        try:
            async with self.store.session() as s:
                return await get_job(s, job_id, tenant_id=tenant.id)
        except RecordNotFound:
            raise NotFound(f"no job {job_id}") from None

    async def get_job(self, tenant: Tenant, job_id: str) -> JobView:
        view = view_of(await self._own_job(tenant, job_id))
        return (await with_validation(self.store, [view]))[0]

    async def list_jobs(self, tenant: Tenant, *, limit: int = 100) -> list[JobView]:
        async with self.store.session() as s:
            jobs = await list_jobs(s, tenant_id=tenant.id, limit=max(1, min(limit, 1000)))
        return await with_validation(self.store, [view_of(j) for j in jobs])

    async def cancel_job(self, tenant: Tenant, job_id: str) -> JobView:
        job = await self._own_job(tenant, job_id)
        if job.state.is_terminal:
            raise Conflict(f"job {job_id} already ended ({job.state.value})")
        if job.state is not JobState.QUEUED and job.miner_hotkey is not None:
            try:
                client = await self.pool.client(job.miner_hotkey)
                await client.cancel_job(miner_job_id(job))
            except MinerCallError as exc:  # it is over for the customer either way
                log.warning("cancel not delivered", extra={"job": job_id, "why": exc.reason})
        return view_of(
            await self.dispatcher.finish(job, JobState.CANCELLED, error="cancelled by the tenant")
        )

    async def job_logs(
        self, tenant: Tenant, job_id: str, *, after: int = 0, follow: bool = False
    ) -> AsyncIterator[LogEntry]:
        job = await self._own_job(tenant, job_id)
        while True:
            if job.miner_hotkey is not None and job.attempts > 0:
                try:
                    client = await self.pool.client(job.miner_hotkey)
                    page = await client.job_logs(
                        miner_job_id(job), after=after, wait_s=10.0 if follow else 0.0
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

    # -- artifacts (see artifacts.py) ------------------------------------------------------

    async def list_artifacts(self, tenant: Tenant, job_id: str) -> ArtifactListing:
        await self._own_job(tenant, job_id)
        assert self.vault is not None
        return await self.vault.listing(self.store, job_id)

    async def open_artifact(
        self, tenant: Tenant, job_id: str, path: str
    ) -> tuple[ArtifactView, AsyncIterator[bytes]]:
        await self._own_job(tenant, job_id)
        assert self.vault is not None
        return await self.vault.open(self.store, job_id, path)

    async def open_lease_exec(self, tenant: Tenant, lease_id: str) -> ExecChannel:
        lease = await self._desk()._own(tenant, lease_id)
        if lease.state.is_terminal:
            raise Conflict(f"lease {lease_id} already ended ({lease.state.value})")
        try:
            client = await self.pool.client(lease.miner_hotkey)
            if not isinstance(client, MinerClient):
                raise NoCapacity("this supply's miners offer no exec sessions")
            return await client.open_exec(self._desk().anonymous_id(lease.id))
        except MinerCallError as exc:
            raise NoCapacity(f"the lease's miner did not open a session: {exc.reason}") from None

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

    def stop(self) -> None:
        """Ask `run` to return after its current pass."""
        self._stopping.set()

    async def run(self) -> None:
        """Dispatch, monitor, validate and bill until cancelled or stopped; probe leases
        alongside, on their own interval."""
        probing = asyncio.create_task(self.watch.run(self._stopping)) if self.watch else None
        try:
            while not self._stopping.is_set():
                try:
                    await self.dispatcher.monitor_once()
                    await self.dispatcher.dispatch_once()
                    if self.validator is not None:
                        await self.validator.run_once()
                    if self.leasing is not None:
                        await self.leasing.bill_once()
                except Exception:  # one bad pass must not stop the gateway
                    log.exception("dispatch pass failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.settings.dispatch_interval_s)
        finally:
            if probing is not None:
                probing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probing
