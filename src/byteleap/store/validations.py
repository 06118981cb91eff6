"""Output validations and lease liveness in the store.

*Validations*: a deterministic job chosen for re-execution gets an ``output_validations``
row (``pending`` until decided: ``match``, ``mismatch`` or ``abandoned``) and one
``validation_runs`` row per run with its digest and the digest's parts; run 0 is the
customer's own. A verdict is written once (guarded by ``pending``), marks the runs of the
miners at fault ``faulty`` with the verdict's time, and :func:`penalised_miners` reads
those for scoring.

*Liveness*: ``lease_health`` holds, per lease, the time of its last passing probe
(``last_ok_at``, which billing never passes) and, once a probe failed, when and why it
was degraded; degraded is final, so ``last_ok_at`` no longer moves. Every failed probe is
also a ``lease_probe_failures`` row with its reason.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, fields
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.store.errors import IllegalTransition, RecordNotFound
from byteleap.store.models import LeaseHealth, LeaseProbeFailure, OutputValidation, ValidationRun

PENDING = "pending"
MATCH = "match"
MISMATCH = "mismatch"
ABANDONED = "abandoned"
VALIDATION_STATES = frozenset({PENDING, MATCH, MISMATCH, ABANDONED})

RUNNING = "running"
DONE = "done"
NO_RESULT = "no_result"


@dataclass(frozen=True, slots=True)
class ValidationRecord:
    job_id: str
    tenant_id: int
    requested: bool
    state: str
    created_at: float
    decided_at: float | None
    majority_digest: str | None
    refunded: float
    detail: str


@dataclass(frozen=True, slots=True)
class RunRecord:
    job_id: str
    run: int
    miner_hotkey: str
    worker_id: str
    state: str
    digest: str | None
    exit_code: int | None
    stdout_sha256: str | None
    artifacts: list[Any] | None
    started_at: float
    finished_at: float | None
    error: str | None
    faulty: bool
    decided_at: float | None

    @property
    def miner_job_id(self) -> str:
        """The id the miner runs a re-execution under (run 0 is the customer's attempt)."""
        return f"{self.job_id}-v{self.run}"


@dataclass(frozen=True, slots=True)
class DigestParts:
    digest: str
    exit_code: int
    stdout_sha256: str
    artifacts: Sequence[tuple[str, int, str]]


@dataclass(frozen=True, slots=True)
class HealthRecord:
    lease_id: str
    last_ok_at: float
    degraded_at: float | None
    reason: str | None
    detail: str | None

    @property
    def degraded(self) -> bool:
        return self.degraded_at is not None


@dataclass(frozen=True, slots=True)
class ProbeFailureRecord:
    id: int
    lease_id: str
    at: float
    target: str
    reason: str
    detail: str


_V_COLUMNS = [getattr(OutputValidation, f.name) for f in fields(ValidationRecord)]
_R_COLUMNS = [getattr(ValidationRun, f.name) for f in fields(RunRecord)]
_H_COLUMNS = [getattr(LeaseHealth, f.name) for f in fields(HealthRecord)]
_F_COLUMNS = [getattr(LeaseProbeFailure, f.name) for f in fields(ProbeFailureRecord)]


def _insert(s: AsyncSession, table: Any) -> Any:
    dialect = s.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _digest_values(parts: DigestParts) -> dict[str, object]:
    return {
        "digest": parts.digest,
        "exit_code": parts.exit_code,
        "stdout_sha256": parts.stdout_sha256,
        "artifacts": [list(a) for a in parts.artifacts],
    }


# -- validations --------------------------------------------------------------------------


async def start_validation(
    s: AsyncSession,
    *,
    job_id: str,
    tenant_id: int,
    requested: bool,
    miner_hotkey: str,
    worker_id: str,
    first: DigestParts,
    at: float,
) -> bool:
    """Open a pending validation with the customer's run as run 0; False if one exists."""
    stmt = (
        _insert(s, OutputValidation)
        .values(
            job_id=job_id,
            tenant_id=tenant_id,
            requested=requested,
            state=PENDING,
            created_at=at,
            decided_at=None,
            majority_digest=None,
            refunded=0.0,
            detail="",
        )
        .on_conflict_do_nothing()
    )
    if (await s.execute(stmt)).rowcount != 1:  # type: ignore[attr-defined]
        return False
    s.add(
        ValidationRun(
            job_id=job_id,
            run=0,
            miner_hotkey=miner_hotkey,
            worker_id=worker_id,
            state=DONE,
            started_at=at,
            finished_at=at,
            error=None,
            faulty=False,
            decided_at=None,
            **_digest_values(first),
        )
    )
    await s.flush()
    return True


async def get_validation(s: AsyncSession, job_id: str) -> ValidationRecord:
    row = (await s.execute(sa.select(*_V_COLUMNS).where(OutputValidation.job_id == job_id))).first()
    if row is None:
        raise RecordNotFound(f"no validation of job {job_id}", entity="validation", id=job_id)
    return ValidationRecord(*row)


async def list_validations(
    s: AsyncSession, *, states: Collection[str] | None = None, limit: int = 1000
) -> list[ValidationRecord]:
    stmt = sa.select(*_V_COLUMNS).order_by(OutputValidation.created_at).limit(limit)
    if states is not None:
        stmt = stmt.where(OutputValidation.state.in_(list(states)))
    return [ValidationRecord(*row) for row in await s.execute(stmt)]


async def validation_states(s: AsyncSession, job_ids: Collection[str]) -> dict[str, str]:
    """job id -> validation state, for the jobs that have one."""
    if not job_ids:
        return {}
    stmt = sa.select(OutputValidation.job_id, OutputValidation.state).where(
        OutputValidation.job_id.in_(list(job_ids))
    )
    return {job_id: state for job_id, state in await s.execute(stmt)}


async def list_runs(s: AsyncSession, job_id: str) -> list[RunRecord]:
    stmt = sa.select(*_R_COLUMNS).where(ValidationRun.job_id == job_id).order_by(ValidationRun.run)
    return [RunRecord(*row) for row in await s.execute(stmt)]


async def add_run(
    s: AsyncSession, job_id: str, run: int, *, miner_hotkey: str, worker_id: str, at: float
) -> RunRecord:
    """A re-execution started on ``worker_id`` (``run`` >= 1)."""
    if run < 1:
        raise ValueError("run 0 is the customer's own")
    s.add(
        ValidationRun(
            job_id=job_id,
            run=run,
            miner_hotkey=miner_hotkey,
            worker_id=worker_id,
            state=RUNNING,
            digest=None,
            exit_code=None,
            stdout_sha256=None,
            artifacts=None,
            started_at=at,
            finished_at=None,
            error=None,
            faulty=False,
            decided_at=None,
        )
    )
    await s.flush()
    return (await list_runs(s, job_id))[run]


async def finish_run(
    s: AsyncSession,
    job_id: str,
    run: int,
    *,
    parts: DigestParts | None,
    at: float,
    error: str | None = None,
) -> None:
    """A running re-execution ended: with a result (``parts``) or without one (``error``)."""
    values: dict[str, object] = {"finished_at": at, "error": error}
    if parts is not None:
        values |= {"state": DONE, **_digest_values(parts)}
    else:
        values["state"] = NO_RESULT
    result = await s.execute(
        sa.update(ValidationRun)
        .where(
            ValidationRun.job_id == job_id, ValidationRun.run == run, ValidationRun.state == RUNNING
        )
        .values(**values)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise IllegalTransition(
            f"run {run} of job {job_id} is not running", entity="validation_run", id=job_id
        )


async def decide_validation(
    s: AsyncSession,
    job_id: str,
    state: str,
    *,
    at: float,
    majority: str | None = None,
    faulty: Collection[str] = (),
    refunded: float = 0.0,
    detail: str = "",
) -> ValidationRecord:
    """Write a pending validation's verdict once; ``faulty`` miners' runs are marked."""
    if state not in VALIDATION_STATES - {PENDING}:
        raise ValueError(f"not a verdict: {state!r}")
    result = await s.execute(
        sa.update(OutputValidation)
        .where(OutputValidation.job_id == job_id, OutputValidation.state == PENDING)
        .values(
            state=state, decided_at=at, majority_digest=majority, refunded=refunded, detail=detail
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        current = await get_validation(s, job_id)
        raise IllegalTransition(
            f"validation of job {job_id} is already {current.state}",
            entity="validation",
            id=job_id,
            current=current.state,
            new=state,
        )
    if faulty:
        await s.execute(
            sa.update(ValidationRun)
            .where(ValidationRun.job_id == job_id, ValidationRun.miner_hotkey.in_(list(faulty)))
            .values(faulty=True, decided_at=at)
        )
    return await get_validation(s, job_id)


async def penalised_miners(s: AsyncSession, *, since: float, until: float) -> set[str]:
    """Miners found outside a majority by a verdict in ``[since, until]``."""
    stmt = sa.select(ValidationRun.miner_hotkey).where(
        ValidationRun.faulty.is_(True),
        ValidationRun.decided_at >= since,
        ValidationRun.decided_at <= until,
    )
    return {hotkey for (hotkey,) in await s.execute(stmt)}


# -- lease liveness -----------------------------------------------------------------------


async def lease_health(s: AsyncSession, lease_ids: Collection[str]) -> dict[str, HealthRecord]:
    if not lease_ids:
        return {}
    stmt = sa.select(*_H_COLUMNS).where(LeaseHealth.lease_id.in_(list(lease_ids)))
    return {row[0]: HealthRecord(*row) for row in await s.execute(stmt)}


async def record_probe_ok(s: AsyncSession, lease_id: str, *, at: float) -> None:
    """A probe passed at ``at``: billing may now reach it (never for a degraded lease)."""
    result = await s.execute(
        sa.update(LeaseHealth)
        .where(
            LeaseHealth.lease_id == lease_id,
            LeaseHealth.degraded_at.is_(None),
            LeaseHealth.last_ok_at < at,
        )
        .values(last_ok_at=at)
    )
    if result.rowcount == 0:  # type: ignore[attr-defined]
        await s.execute(
            _insert(s, LeaseHealth)
            .values(lease_id=lease_id, last_ok_at=at, degraded_at=None, reason=None, detail=None)
            .on_conflict_do_nothing()
        )


async def record_probe_failure(
    s: AsyncSession,
    lease_id: str,
    *,
    at: float,
    target: str,
    reason: str,
    detail: str,
    last_ok_at: float,
) -> HealthRecord:
    """Record a failed probe and degrade the lease (once; the first failure is kept).

    ``last_ok_at`` is used only when the lease has no health row yet (its start)."""
    s.add(LeaseProbeFailure(lease_id=lease_id, at=at, target=target, reason=reason, detail=detail))
    await s.execute(
        _insert(s, LeaseHealth)
        .values(
            lease_id=lease_id, last_ok_at=last_ok_at, degraded_at=None, reason=None, detail=None
        )
        .on_conflict_do_nothing()
    )
    await s.execute(
        sa.update(LeaseHealth)
        .where(LeaseHealth.lease_id == lease_id, LeaseHealth.degraded_at.is_(None))
        .values(degraded_at=at, reason=reason, detail=detail[:2000])
    )
    return (await lease_health(s, [lease_id]))[lease_id]


async def probe_failures(s: AsyncSession, lease_id: str) -> list[ProbeFailureRecord]:
    stmt = (
        sa.select(*_F_COLUMNS)
        .where(LeaseProbeFailure.lease_id == lease_id)
        .order_by(LeaseProbeFailure.at, LeaseProbeFailure.id)
    )
    return [ProbeFailureRecord(*row) for row in await s.execute(stmt)]
