"""The real `CloudService`: the customer-facing side of jobs and leases.

Tenants, keys, quotas and balances are checked here; placing and following jobs
is the `Dispatcher`'s (dispatch.py), leases the `LeaseDesk`'s (leasing.py).
A job is admitted only with its worst case (price × timeout) held against the balance
(:mod:`byteleap.store.money`); it is charged what it ran when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.config import GatewaySettings
from byteleap.gateway.access import ExecChannel
from byteleap.gateway.artifact_vault import ArtifactVault
from byteleap.gateway.checkpoint_keeper import CheckpointKeeper
from byteleap.gateway.dispatch import Dispatcher
from byteleap.gateway.errors import (
    Conflict,
    NoCapacity,
    NotFound,
    PaymentRequired,
    QuotaExceeded,
    Unauthorized,
)
from byteleap.gateway.job_requests import miner_job_id, worst_case
from byteleap.gateway.leadership import Leadership
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.liveness import LeaseWatch
from byteleap.gateway.miners import Supply
from byteleap.gateway.output_validator import OutputValidator, with_validation
from byteleap.gateway.port import Tenant
from byteleap.net.messages import JobLogs
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.protocol.api import (
    JobSpec,
    JobState,
    JobView,
    LeaseSpec,
    LeaseView,
    LogEntry,
)
from byteleap.protocol.artifacts import ArtifactListing, ArtifactView
from byteleap.protocol.billing import (
    DEFAULT_CURRENCY,
    DEFAULT_MAX_QUEUED_JOBS,
    DEFAULT_MAX_WORKERS,
    format_amount,
)
from byteleap.store import IllegalTransition, RecordNotFound, Store, StoreConflict
from byteleap.store.cloud import (
    JobRecord,
    add_api_key,
    count_jobs,
    create_tenant,
    get_job,
    get_tenant,
    insert_job,
    list_jobs,
    revoke_api_key,
    tenant_by_key_hash,
)
from byteleap.store.leases import LeaseRecord, get_lease
from byteleap.store.money import InsufficientFunds, available, hold

log = logging.getLogger(__name__)

KEY_PREFIX = "blk_"
# A followed log waits this long on its miner for a line; a finished job's, for its last ones.
FOLLOW_WAIT_S = 10.0
TAIL_WAIT_S = 3.0
ACTIVE = (JobState.QUEUED, JobState.SCHEDULED, JobState.RUNNING)


def hash_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode()).hexdigest()


async def create_tenant_with_key(
    store: Store,
    name: str,
    *,
    balance: float,
    max_workers: int = DEFAULT_MAX_WORKERS,
    max_running_jobs: int = DEFAULT_MAX_WORKERS,
    max_queued_jobs: int = DEFAULT_MAX_QUEUED_JOBS,
) -> str:
    """A new tenant and its first API key; the key is shown once and stored hashed."""
    api_key = KEY_PREFIX + secrets.token_urlsafe(32)
    async with store.session() as s:
        tenant = await create_tenant(
            s,
            name,
            balance=balance,
            max_workers=max_workers,
            max_running_jobs=max_running_jobs,
            max_queued_jobs=max_queued_jobs,
            at=int(time.time()),
        )
        await add_api_key(s, tenant.id, hash_key(api_key), at=int(time.time()))
    return api_key


async def revoke_key(store: Store, api_key: str) -> bool:
    """Revoke ``api_key`` now: new requests are refused, open streams end within seconds
    (key_watch.py); False when it was unknown or already revoked."""
    async with store.session() as s:
        return await revoke_api_key(s, hash_key(api_key), at=int(time.time()))


def view_of(job: JobRecord, currency: str = DEFAULT_CURRENCY) -> JobView:
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
        currency=currency,
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
    # runs the passes only while this replica holds them (None: a single gateway, always)
    leadership: Leadership | None = None
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
            # Beside the artifacts, in a dir no job id can name ('.' never starts one).
            checkpoints=CheckpointKeeper(self.settings.artifacts_path / ".checkpoints"),
        )
        if self.validator is not None:
            self.dispatcher.on_finished = self.validator.on_job_finished
        if self.leasing is not None:
            self.leasing.on_ended = self._stop_lease_jobs

    # -- the port -----------------------------------------------------------------------

    async def authenticate(self, api_key: str) -> Tenant:
        async with self.store.session() as s:
            tenant = await tenant_by_key_hash(s, hash_key(api_key))
        if tenant is None:
            raise Unauthorized("unknown or revoked API key")
        return _tenant(tenant)

    async def submit_job(self, tenant: Tenant, spec: JobSpec) -> JobView:
        worst = worst_case(spec, self.settings)
        async with self.store.session() as s:
            fresh = await get_tenant(s, tenant.id)
            if spec.lease_id is not None:
                await self._check_lease(s, tenant, spec.lease_id)
            if await count_jobs(s, tenant.id, ACTIVE) >= fresh.max_queued_jobs:
                raise QuotaExceeded(f"at most {fresh.max_queued_jobs} unfinished jobs")
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
            try:
                job, created = await insert_job(s, record)
            except StoreConflict as exc:  # the key names another spec: the tenant's doing
                raise Conflict(str(exc), field="idempotency_key") from None
            if created:
                # Set aside in the job's own transaction: concurrent submits each see the
                # others' holds, so together they never spend more than the balance.
                try:
                    await hold(s, tenant.id, job.id, worst, at=record.created_at)
                except InsufficientFunds:
                    free, unit = await available(s, tenant.id), self.settings.currency
                    raise PaymentRequired(
                        f"the balance not yet held ({format_amount(free, unit)}) does not "
                        f"cover the job's worst case {format_amount(worst, unit)} "
                        "(price × timeout)"
                    ) from None
        return view_of(job, self.settings.currency)

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
        view = view_of(await self._own_job(tenant, job_id), self.settings.currency)
        return (await with_validation(self.store, [view]))[0]

    async def list_jobs(self, tenant: Tenant, *, limit: int = 100) -> list[JobView]:
        async with self.store.session() as s:
            jobs = await list_jobs(s, tenant_id=tenant.id, limit=max(1, min(limit, 1000)))
        return await with_validation(self.store, [view_of(j, self.settings.currency) for j in jobs])

    async def cancel_job(self, tenant: Tenant, job_id: str) -> JobView:
        job = await self._own_job(tenant, job_id)
        if job.state.is_terminal:
            raise Conflict(f"job {job_id} already ended ({job.state.value})")
        cancelled = await self._cancel(job, "cancelled by the tenant")
        return view_of(cancelled, self.settings.currency)

    async def _cancel(self, job: JobRecord, why: str) -> JobRecord:
        if job.state is not JobState.QUEUED and job.miner_hotkey is not None:
            try:
                client = await self.pool.client(job.miner_hotkey)
                await client.cancel_job(miner_job_id(job))
            except MinerCallError as exc:  # it is over for the customer either way
                log.warning("cancel not delivered", extra={"job": job.id, "why": exc.reason})
        return await self.dispatcher.finish(job, JobState.CANCELLED, error=why)

    async def _stop_lease_jobs(self, lease: LeaseRecord) -> None:
        """A lease ended (released, expired, failed): the jobs on it stop with it, or they
        would run on a worker nobody pays for."""
        async with self.store.session() as s:
            active = await list_jobs(s, tenant_id=lease.tenant_id, states=ACTIVE, limit=10_000)
        for job in active:
            try:
                if JobSpec.model_validate_json(job.spec_json).lease_id != lease.id:
                    continue
                await self._cancel(job, f"its lease {lease.id} ended ({lease.state.value})")
            except IllegalTransition:
                pass  # it ended meanwhile
            except Exception:  # one job's trouble must not keep the others running
                log.exception("could not stop a lease's job", extra={"job": job.id})

    async def job_logs(
        self, tenant: Tenant, job_id: str, *, after: int = 0, follow: bool = False
    ) -> AsyncIterator[LogEntry]:
        """Lines numbered ``after`` and up, read page by page from the job's miner, which
        keeps the whole log (up to its caps): what there is now, or with ``follow`` until the
        job ends. A finished job's last lines may still be on their way from the worker (they
        follow its end); they are waited for, briefly."""
        job = await self._own_job(tenant, job_id)
        while True:
            ended = job.state.is_terminal
            page = await self._log_page(job, after, FOLLOW_WAIT_S if follow else 0.0)
            if page is None:  # no miner yet, or it cannot answer
                if ended or not follow:
                    return
            else:
                for line in page.lines:
                    yield LogEntry(seq=line.seq, stream=line.stream, line=line.line, ts=line.ts)
                    after = line.seq + 1
                if page.done and ended:
                    return
                if page.more:
                    continue
                if not follow and (not ended or not page.lines):
                    return  # caught up; a finished job's tail had its wait
            if page is None or not page.lines:
                await asyncio.sleep(0.2)
            job = await self._own_job(tenant, job_id)

    async def _log_page(self, job: JobRecord, after: int, wait_s: float) -> JobLogs | None:
        if job.miner_hotkey is None or job.attempts == 0:
            return None
        if job.state.is_terminal:
            wait_s = max(wait_s, TAIL_WAIT_S)
        try:
            client = await self.pool.client(job.miner_hotkey)
            return await client.job_logs(miner_job_id(job), after=after, wait_s=wait_s)
        except MinerCallError:
            return None

    # -- artifacts (see artifact_vault.py) ------------------------------------------------------

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

    def _leading(self) -> bool:
        return self.leadership is None or self.leadership.held

    async def run_passes(self) -> None:
        """One round of every pass, each in its own guard: a pass that fails (logged) holds
        back none of the others, so a monitoring failure delays no dispatch."""
        passes: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("monitor", self.dispatcher.monitor_once),
            ("dispatch", self.dispatcher.dispatch_once),
        ]
        if self.validator is not None:
            passes.append(("validation", self.validator.run_once))
        if self.leasing is not None:
            passes.append(("billing", self.leasing.bill_once))
        for name, step in passes:
            try:
                await step()
            except Exception:  # one bad pass must not stop the gateway
                log.exception("gateway pass failed", extra={"pass": name})

    async def run(self) -> None:
        """Dispatch, monitor, validate and bill until cancelled or stopped; probe leases
        alongside, on their own interval."""
        probing = (
            asyncio.create_task(self.watch.run(self._stopping, self._leading))
            if self.watch
            else None
        )
        try:
            while not self._stopping.is_set():
                if self.leadership is None or await self.leadership.renew():
                    await self.run_passes()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), self.settings.dispatch_interval_s)
        finally:
            if probing is not None:
                probing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await probing
