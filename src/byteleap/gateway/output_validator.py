"""Output validation in the gateway: re-execute deterministic jobs on other miners, compare.

When a deterministic job ends with a result, the dispatcher hands it to
:meth:`OutputValidator.on_job_finished`, which opens a validation when the customer asked
for one or the sample (``validation_fraction``) picks it. :meth:`OutputValidator.run_once`
then moves every pending validation on: it starts a re-execution on an idle worker of a
miner that has not run the job yet (under ``<job id>-v<n>``, never billed, and with no
receipt — re-executions are jobs, not leases), follows it, and asks
:func:`byteleap.gateway.output_verdicts.decide` what the digests say. A verdict is stored with
every run's digest; a mismatch marks the miners outside the majority (the validator's
scoring drops their lease revenue for the lease window) and refunds the customer when its
own result was the wrong one. A validation no other miner could take within
``validation_timeout_s`` is abandoned (shown as not validated).
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from byteleap.config import GatewaySettings
from byteleap.gateway.job_requests import job_request, requirements_of
from byteleap.gateway.miners import Supply
from byteleap.gateway.output_verdicts import (
    NeedRuns,
    Outcome,
    Run,
    Verdict,
    decide,
    digest_of,
    has_result,
    pick_checker,
    should_validate,
)
from byteleap.gateway.scheduler import rank
from byteleap.net.messages import JobRequest, JobStatus, RunState
from byteleap.net.miner_client import MinerCallError
from byteleap.protocol.api import JobSpec, JobView
from byteleap.protocol.execution import ExecutionResult
from byteleap.store import IllegalTransition, Store
from byteleap.store.cloud import JobRecord, get_job
from byteleap.store.money import credit
from byteleap.store.validations import (
    ABANDONED,
    DONE,
    MATCH,
    MISMATCH,
    PENDING,
    RUNNING,
    DigestParts,
    RunRecord,
    ValidationRecord,
    add_run,
    decide_validation,
    finish_run,
    list_runs,
    list_validations,
    start_validation,
    validation_states,
)

log = logging.getLogger(__name__)

#: Runs of one job in all, counting those that gave no result: each costs a miner's time.
MAX_ATTEMPTS = 6
_SHOWN = {PENDING: "pending", MATCH: "match", MISMATCH: "mismatch"}  # abandoned: not shown


def parts_of(result: ExecutionResult) -> DigestParts:
    digest = digest_of(result)
    return DigestParts(digest.hex, digest.exit_code, digest.stdout_sha256, digest.artifacts)


def rerun_request(
    job_id: str, run: int, worker_id: str, spec: JobSpec, gpus: tuple[int, ...] = ()
) -> JobRequest:
    """The miner request for re-execution ``run`` of a job: same program, same limits."""
    return job_request(f"{job_id}-v{run}", 1, worker_id, spec, gpus=gpus)


async def with_validation(store: Store, views: Sequence[JobView]) -> list[JobView]:
    """The views with their ``validated`` state filled in."""
    async with store.session() as s:
        states = await validation_states(s, [v.id for v in views])
    return [
        v.model_copy(update={"validated": _SHOWN.get(states[v.id])}) if v.id in states else v
        for v in views
    ]


@dataclass
class OutputValidator:
    store: Store
    pool: Supply
    settings: GatewaySettings
    clock: Callable[[], float] = time.time
    draw: Callable[[], float] = random.random

    async def on_job_finished(self, job: JobRecord, result: ExecutionResult) -> bool:
        """A job ended with ``result`` on its miner: open its validation if chosen."""
        spec = JobSpec.model_validate_json(job.spec_json)
        chosen = should_validate(
            deterministic=spec.deterministic,
            requested=spec.validate_output,
            fraction=self.settings.validation_fraction,
            draw=self.draw(),
        )
        # A lease's jobs run on the tenant's own machine: nothing to hold a miner to.
        if not chosen or spec.lease_id is not None or not has_result(result):
            return False
        if job.miner_hotkey is None or job.worker_id is None:
            return False
        async with self.store.session() as s:
            opened = await start_validation(
                s,
                job_id=job.id,
                tenant_id=job.tenant_id,
                requested=spec.validate_output,
                miner_hotkey=job.miner_hotkey,
                worker_id=job.worker_id,
                first=parts_of(result),
                at=self.clock(),
            )
        if opened:
            log.info("job output to be validated", extra={"job": job.id})
        return opened

    async def run_once(self) -> None:
        """Move every pending validation one step on."""
        async with self.store.session() as s:
            pending = await list_validations(s, states=[PENDING], limit=1000)
        for validation in pending:
            try:
                await self._advance(validation)
            except IllegalTransition:  # decided meanwhile (another gateway on the store)
                log.debug("validation moved meanwhile", extra={"job": validation.job_id})

    async def _advance(self, validation: ValidationRecord) -> None:
        async with self.store.session() as s:
            runs = await list_runs(s, validation.job_id)
            job = await get_job(s, validation.job_id)
        for run in runs:
            if run.state == RUNNING:
                await self._follow(run)
        async with self.store.session() as s:
            runs = await list_runs(s, validation.job_id)
        if any(r.state == RUNNING for r in runs):
            return
        step = decide([Run(r.miner_hotkey, r.digest or "") for r in runs if r.state == DONE])
        if isinstance(step, Verdict):
            await self._conclude(job, runs, step)
            return
        await self._start_run(validation, job, runs, step)

    async def _follow(self, run: RunRecord) -> None:
        try:
            client = await self.pool.client(run.miner_hotkey)
            status: JobStatus | None = await client.job_status(run.miner_job_id)
            why = ""
        except MinerCallError as exc:
            if exc.reason not in {"unknown_job", "unknown_miner"}:
                return  # unreachable for now: look again next pass
            status, why = None, f"miner lost the run ({exc.reason})"
        if status is not None and status.state is RunState.RUNNING:
            # The worker enforces the job's own timeout; this bounds a miner that never
            # reports an end.
            if self.clock() - run.started_at <= self.settings.validation_timeout_s:
                return
            with contextlib.suppress(MinerCallError):
                await client.cancel_job(run.miner_job_id)
            status, why = None, "the re-execution ran past the job's timeout"
        parts = None
        if status is not None:
            if has_result(status.result):
                assert status.result is not None
                parts = parts_of(status.result)
            else:
                why = f"{status.state.value}: {status.detail}"
        async with self.store.session() as s:
            await finish_run(
                s, run.job_id, run.run, parts=parts, at=self.clock(), error=why or None
            )

    async def _start_run(
        self, validation: ValidationRecord, job: JobRecord, runs: list[RunRecord], need: NeedRuns
    ) -> None:
        now = self.clock()
        tried = {r.miner_hotkey for r in runs} | set(need.exclude)
        if len(runs) >= MAX_ATTEMPTS or now - validation.created_at > (
            self.settings.validation_timeout_s
        ):
            async with self.store.session() as s:
                await decide_validation(
                    s, job.id, ABANDONED, at=now, detail="no other miner returned a result"
                )
            log.warning("validation abandoned", extra={"job": job.id})
            return
        spec = JobSpec.model_validate_json(job.spec_json)
        # A re-execution is not billed to the tenant: the job's price cap does not apply.
        requirements = requirements_of(spec).model_copy(update={"max_price_per_s": None})
        offers = [
            o for o in await self.pool.offers() if o.state == "idle" and o.miner_hotkey not in tried
        ]
        fitting = rank(requirements, offers).placements
        if not fitting:
            return  # try again next pass, until the validation times out
        checker = pick_checker(fitting, self.draw())
        offer = checker.worker
        index = len(runs)
        try:
            client = await self.pool.client(offer.miner_hotkey)
            request = rerun_request(job.id, index, offer.worker_id, spec, checker.gpu_indices)
            await client.submit_job(request)
        except MinerCallError as exc:
            log.info("re-execution not started", extra={"job": job.id, "why": exc.reason})
            return
        async with self.store.session() as s:
            await add_run(
                s, job.id, index, miner_hotkey=offer.miner_hotkey, worker_id=offer.worker_id, at=now
            )
        log.info(
            "job re-executed for validation",
            extra={"job": job.id, "run": index, "miner": offer.miner_hotkey},
        )

    async def _conclude(self, job: JobRecord, runs: list[RunRecord], verdict: Verdict) -> None:
        now = self.clock()
        state = MATCH if verdict.outcome is Outcome.MATCH else MISMATCH
        digests = ", ".join(f"run {r.run} on {r.miner_hotkey}: {r.digest}" for r in runs)
        async with self.store.session() as s:
            refunded = 0.0
            if verdict.refund and job.cost > 0:
                await credit(
                    s, job.tenant_id, job.cost, reason="validation_refund", job_id=job.id, at=now
                )
                refunded = job.cost
            await decide_validation(
                s,
                job.id,
                state,
                at=now,
                majority=verdict.majority,
                faulty=verdict.faulty,
                refunded=refunded,
                detail=f"{verdict.reason} ({digests})"[:4000],
            )
        level = logging.WARNING if state == MISMATCH else logging.INFO
        log.log(
            level,
            "job output validated",
            extra={"job": job.id, "state": state, "faulty": list(verdict.faulty)},
        )


__all__ = ["OutputValidator", "parts_of", "rerun_request", "with_validation"]
