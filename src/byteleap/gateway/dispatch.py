"""Dispatch and monitoring: the engine under the gateway's job API.

*Dispatch* places queued jobs on idle workers, fairly across tenants, through the
scheduler's `place` (a job on a lease goes straight to its lease's worker); a tenant at its
``max_workers`` or ``max_running_jobs`` (`store.quotas`) gets no more this pass, and its jobs
wait queued;
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

from byteleap import metrics
from byteleap.config import GatewaySettings
from byteleap.gateway.artifact_vault import ArtifactVault
from byteleap.gateway.checkpoint_keeper import CheckpointKeeper
from byteleap.gateway.job_requests import job_request, miner_job_id, requirements_of
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.miners import Supply
from byteleap.gateway.quota_room import QuotaRoom
from byteleap.gateway.scheduler import (
    FairQueue,
    NoPlacement,
    PlacementPass,
    Requirements,
    WorkerOffer,
    place,
)
from byteleap.net.job_times import checked_run_seconds
from byteleap.net.messages import JobStatus, RunState
from byteleap.net.miner_client import MinerCallError
from byteleap.protocol.api import JobSpec, JobState
from byteleap.protocol.artifacts import RejectedArtifact
from byteleap.protocol.execution import ArtifactInfo, ExecutionResult, InputFile
from byteleap.store import IllegalTransition, Store
from byteleap.store.cloud import JobRecord, advance_job, list_jobs, update_job
from byteleap.store.leases import get_lease
from byteleap.store.money import charge, payable, release
from byteleap.store.quotas import quotas_of

log = logging.getLogger(__name__)

START_CONCURRENCY = 32  # attempts of one dispatch pass started at once

# A worker's refusals (``reason: detail``) that no other worker would answer differently.
# (``bad_input``: a URL input with a wrong digest or size, a 4xx, a refused address.)
_THE_JOBS_OWN_FAULT = ("bad_spec:", "start_failed:", "bad_input:")
_FINAL_OF_MINER = {
    RunState.SUCCEEDED: JobState.SUCCEEDED,
    RunState.FAILED: JobState.FAILED,
    RunState.TIMED_OUT: JobState.TIMED_OUT,
    RunState.CANCELLED: JobState.CANCELLED,
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


def _first_line(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return " ".join(text.split("\n")[:3])[:500]


@dataclass(frozen=True)
class _Start:
    """One attempt to start: the job, where, at what price, and the lease it runs on."""

    job: JobRecord
    spec: JobSpec
    where: tuple[str, str]
    price_per_s: float
    lease: str | None = None
    gpus: tuple[int, ...] = ()  # the worker's GPUs it gets (positions in its listing)


@dataclass
class Dispatcher:
    store: Store
    pool: Supply
    settings: GatewaySettings
    leasing: LeaseDesk | None = None
    clock: Callable[[], float] = time.time
    # keeps finished jobs' artifacts; None: the workers send none
    vault: ArtifactVault | None = None
    # keeps running jobs' latest checkpoints for their next attempts; None: none kept
    checkpoints: CheckpointKeeper | None = None
    # told of every job that ended with a result (output validation, see validation.py)
    on_finished: Callable[[JobRecord, ExecutionResult], Awaitable[object]] | None = None
    # job id -> workers it already failed on (never placed there again)
    failed_on: dict[str, set[tuple[str, str]]] = field(default_factory=dict)
    # job id -> when its running cost was last written
    cost_shown: dict[str, float] = field(default_factory=dict)
    # (miner, worker) -> the key it enrolled with, from the offers jobs were placed from:
    # what a job's signed run times are checked against
    worker_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    # job id -> since when no worker on offer could run it
    unplaceable_since: dict[str, float] = field(default_factory=dict)

    async def dispatch_once(self) -> int:
        """Place queued jobs on idle workers, fairly across tenants; returns how many.

        Every job is handled inside its own guard: a job whose spec cannot be read, placed or
        sent fails alone, with its reason, and the pass goes on with everyone else's."""
        async with self.store.session() as s:
            queued = await list_jobs(s, states=[JobState.QUEUED], limit=1000, oldest_first=True)
            if not queued:
                return 0
            room = QuotaRoom.of(await quotas_of(s, {job.tenant_id for job in queued}))
        fair: FairQueue[tuple[JobRecord, JobSpec]] = FairQueue()
        placed = 0
        for job in queued:
            spec = await self._readable(job)
            if spec is None:
                continue
            if spec.lease_id is not None:  # runs on the tenant's own leased worker
                if not room.may_start_job(job.tenant_id, on_lease=True):
                    continue  # waits, queued, for one of its running jobs to end
                room.take_job(job.tenant_id, on_lease=True)
                placed += await self._guarded(job, self._start_on_lease(job, spec, spec.lease_id))
            else:
                fair.enqueue(str(job.tenant_id), job.id, (job, spec))
        if not len(fair):
            return placed
        # One snapshot of idle workers per pass; each pick takes its worker out of it.
        offers = await self.pool.offers()
        self.worker_keys.update({o.key: o.public_key for o in offers if o.public_key})
        idle = PlacementPass([o for o in offers if o.state == "idle"])
        starts: list[_Start] = []
        while idle.available and len(fair):
            entry = fair.dequeue()
            if entry is None:
                break
            job, spec = entry.item
            if not room.may_start_job(job.tenant_id, on_lease=False):
                # Its tenant's own quota holds it back, not the supply: it waits queued, and
                # the time it waits so is not counted as unplaceable.
                self.unplaceable_since.pop(job.id, None)
                continue
            try:
                wants = requirements_of(spec)
                choice = idle.place(wants, exclude=self.failed_on.get(job.id, set()))
            except Exception as exc:  # this job's fault; the others go on
                await self._fail_alone(job, f"cannot be placed: {exc}")
                continue
            if isinstance(choice, NoPlacement):
                await self._unplaceable(job, wants, offers)
                continue
            self.unplaceable_since.pop(job.id, None)
            room.take_job(job.tenant_id, on_lease=False)
            idle.take(choice.key)
            starts.append(
                _Start(job, spec, choice.key, choice.price_per_s, gpus=choice.gpu_indices)
            )
        return placed + await self._start_attempts(starts)

    async def _unplaceable(
        self, job: JobRecord, wants: Requirements, offers: list[WorkerOffer]
    ) -> None:
        """Fail a job that no worker on offer could run even once free, after it has been so
        for ``unplaceable_timeout_s``; a job that only waits for a busy worker waits on."""
        anyone = place(wants, offers)
        if not isinstance(anyone, NoPlacement) or anyone.would_fit_later:
            self.unplaceable_since.pop(job.id, None)
            return
        now = self.clock()
        since = self.unplaceable_since.setdefault(job.id, now)
        if now - since >= self.settings.unplaceable_timeout_s:
            self.unplaceable_since.pop(job.id, None)
            await self._fail_alone(
                job, f"no worker on offer can run it ({anyone.message}); waited {now - since:.0f}s"
            )

    async def _readable(self, job: JobRecord) -> JobSpec | None:
        """The job's spec; None (and the job failed) when it no longer parses."""
        try:
            return JobSpec.model_validate_json(job.spec_json)
        except ValueError as exc:
            await self._fail_alone(job, f"its spec is not valid: {_first_line(exc)}")
            return None

    async def _guarded(self, job: JobRecord, work: Awaitable[int]) -> int:
        try:
            return await work
        except Exception as exc:  # this job's fault; the others go on
            await self._fail_alone(job, f"not started: {_first_line(exc)}")
            return 0

    async def _fail_alone(self, job: JobRecord, why: str) -> None:
        """End ``job`` as failed with ``why``; a failure to do even that is logged, never
        raised into the pass that is handling other jobs."""
        log.warning("job failed in dispatch", extra={"job": job.id, "why": why})
        try:
            await self.finish(job, JobState.FAILED, error=why[:1000])
        except IllegalTransition:
            pass  # it moved meanwhile (a cancel)
        except Exception:
            log.exception("could not fail a job", extra={"job": job.id})

    async def _start_on_lease(self, job: JobRecord, spec: JobSpec, lease_id: str) -> int:
        async with self.store.session() as s:
            lease = await get_lease(s, lease_id, tenant_id=job.tenant_id)
        if lease.state.is_terminal or self.leasing is None:
            await self.finish(job, JobState.FAILED, error=f"lease {lease_id} is not active")
            return 0
        where = (lease.miner_hotkey, lease.worker_id)
        # The lease is billed by the second already; its jobs cost nothing more. A GPU lease
        # holds its worker whole: its jobs see every GPU it leased.
        gpus = tuple(range(lease.gpu_count)) if lease.gpu_model != "cpu" else ()
        start = _Start(job, spec, where, 0.0, self.leasing.anonymous_id(lease.id), gpus)
        return await self._start_attempts([start])

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
            try:
                request = job_request(
                    miner_job_id(record),
                    record.attempts,
                    worker_id,
                    start.spec,
                    lease=start.lease,
                    artifact_limit_bytes=self.vault.limit_bytes if self.vault else None,
                    gpus=start.gpus,
                    restored=await self._restored(record, start.spec),
                )
            except ValueError as exc:  # no miner could run it: no point in another attempt
                await self._fail_alone(record, f"cannot be sent: {_first_line(exc)}")
                return False
            async with gate:
                try:
                    client = await self.pool.client(miner_hotkey)
                    await client.submit_job(request)
                    return True
                except MinerCallError as exc:
                    reason = f"not started on {worker_id}: {exc.reason}"
                except Exception as exc:  # one miner's answer, not the pass's
                    log.exception("submit failed", extra={"job": record.id})
                    reason = f"not started on {worker_id}: {_first_line(exc)}"
            try:
                await self._retry_or_fail(record, reason)
            except Exception:  # the next pass finds it where it is
                log.exception("could not requeue a job", extra={"job": record.id})
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
            except Exception:  # one job's trouble; the next pass looks again
                log.exception("could not follow a job", extra={"job": job.id})

    async def _status_of(self, job: JobRecord) -> JobStatus | MinerCallError | None:
        """What the job's miner says; None when asking failed in an unexpected way (logged;
        the next pass asks again)."""
        assert job.miner_hotkey is not None
        try:
            client = await self.pool.client(job.miner_hotkey)
            return await client.job_status(miner_job_id(job))
        except MinerCallError as exc:
            return exc
        except Exception:  # one miner's answer must not end the pass
            log.exception("job status failed", extra={"job": job.id})
            return None

    async def _restored(self, job: JobRecord, spec: JobSpec) -> dict[str, InputFile]:
        """The checkpoint an attempt after the first starts with (only its own job's)."""
        if self.checkpoints is None or spec.checkpoint is None or job.attempts <= 1:
            return {}
        return await self.checkpoints.inputs_for(job.id, spec.checkpoint)

    async def _take_checkpoint(self, job: JobRecord, status: JobStatus) -> None:
        """Read the attempt's checkpoint from its miner when the miner holds a newer one;
        a failure waits for the next pass (or leaves the retry the set kept before)."""
        seq = status.checkpoint_seq
        if self.checkpoints is None or seq is None or job.miner_hotkey is None:
            return
        if not self.checkpoints.is_newer(job.id, (job.attempts, seq)):
            return
        try:
            client = await self.pool.client(job.miner_hotkey)
            checkpoint = await client.read_checkpoint(miner_job_id(job))
            await self.checkpoints.keep(job.id, job.attempts, checkpoint)
        except Exception as exc:  # a passing failure, or a set that does not parse
            log.warning("checkpoint not read", extra={"job": job.id, "why": _first_line(exc)})

    async def _apply(self, job: JobRecord, status: JobStatus | MinerCallError | None) -> None:
        if status is None:
            return
        if isinstance(status, JobStatus):
            await self._take_checkpoint(job, status)
        if isinstance(status, MinerCallError):
            if status.reason in {"unknown_job", "unknown_miner"}:
                await self._retry_or_fail(job, f"miner lost the job ({status.reason})")
            return  # unreachable for now: the next pass looks again
        if status.state is RunState.RUNNING:
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
        if status.state is RunState.REFUSED and status.detail.startswith(_THE_JOBS_OWN_FAULT):
            # A command that does not exist, a spec the executor refuses: it would fail the
            # same on every worker, so no other attempt is spent on it.
            # Never started: nothing to bill.
            error = f"refused: {status.detail}"[:1000]
            await self.finish(job, JobState.FAILED, ran_s=0.0, error=error)
            return
        if status.state in (RunState.LOST, RunState.REFUSED):
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
            ran_s=self._signed_run_seconds(job, status),
            exit_code=result.exit_code if result else None,
            stdout_tail=result.stdout_tail if result else "",
            stderr_tail=result.stderr_tail if result else "",
            error=error,
        )
        if self.on_finished is not None and result is not None:
            await self.on_finished(ended, result)

    def _signed_run_seconds(self, job: JobRecord, status: JobStatus) -> float | None:
        """How long the attempt ran by its worker's signed times (None: not signed by the
        key the worker was placed with; the gateway's own view is billed)."""
        assert job.miner_hotkey is not None and job.worker_id is not None
        seconds = checked_run_seconds(
            status.times,
            public_key_hex=self.worker_keys.get((job.miner_hotkey, job.worker_id)),
            job_id=miner_job_id(job),
            attempt=job.attempts,
            worker_id=job.worker_id,
        )
        if seconds is None and status.times is not None:
            log.warning("job times not signed by its worker", extra={"job": job.id})
        return seconds

    async def _collect(self, job: JobRecord, listing: list[ArtifactInfo]) -> list[RejectedArtifact]:
        assert self.vault is not None and job.miner_hotkey is not None
        try:
            client = await self.pool.client(job.miner_hotkey)
        except MinerCallError as exc:
            why = f"miner unreachable: {exc.reason}"
            return [RejectedArtifact(path=a.path, size=a.size, reason=why) for a in listing]
        return await self.vault.collect(self.store, client, job.id, miner_job_id(job), listing)

    async def _retry_or_fail(self, job: JobRecord, why: str) -> None:
        try:
            retries = JobSpec.model_validate_json(job.spec_json).retries
        except ValueError:  # a spec that no longer parses gets no other attempt
            retries = 0
        if job.worker_id and job.miner_hotkey:
            self.failed_on.setdefault(job.id, set()).add((job.miner_hotkey, job.worker_id))
        if job.attempts <= retries:
            log.warning("job goes back to the queue", extra={"job": job.id, "why": why})
            async with self.store.session() as s:
                await advance_job(s, job.id, JobState.QUEUED, at=self.clock(), error=why)
        else:
            await self.finish(job, JobState.FAILED, error=f"gave up after {job.attempts}: {why}")

    async def finish(
        self,
        job: JobRecord,
        state: JobState,
        *,
        ran_s: float | None = None,
        **fields: object,
    ) -> JobRecord:
        """End ``job``: charge what it cost (from its hold), release the rest of the hold.

        ``ran_s`` is how long the worker says the program ran (its own start and end
        times); billing uses it, bounded by what the gateway saw, so time the gateway was
        down or slow to look is not billed. Without it the gateway's own view counts.
        """
        now = self.clock()
        seen = max(0.0, now - job.started_at) if job.started_at is not None else 0.0
        seconds = seen if ran_s is None else min(seen, max(0.0, ran_s))
        with contextlib.suppress(ValueError):  # a program is stopped at its timeout
            seconds = min(seconds, JobSpec.model_validate_json(job.spec_json).timeout_s)
        self.failed_on.pop(job.id, None)
        self.cost_shown.pop(job.id, None)
        async with self.store.session() as s:
            # Never more than its hold (its worst case): the cost recorded and the amount
            # charged are one number.
            cost = await payable(s, job.tenant_id, job.id, seconds * job.price_per_s)
            charged = await charge(s, job.tenant_id, cost, reason="job", job_id=job.id, at=now)
            await release(s, job.id)
            ended = await advance_job(s, job.id, state, at=now, cost=charged, **fields)
        if self.checkpoints is not None:  # ended: only a next attempt would have used it
            await self.checkpoints.drop(job.id)
        metrics.GATEWAY_JOBS.labels(state.value).inc()
        metrics.GATEWAY_JOB_SECONDS.observe(seconds)
        return ended
