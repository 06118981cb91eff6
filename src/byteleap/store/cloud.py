"""The gateway's persistence: tenants, hashed API keys and jobs.

The gateway is hosted by the validator and keeps its facts in the validator's database.
API keys are stored only as the sha256 hex of the key. Balances, holds and the ledger are
in :mod:`byteleap.store.money`. Jobs move only along ``JOB_TRANSITIONS``: a terminal job
is final, and its record refuses every further change (:class:`IllegalTransition`).

Insertion is idempotent per ``(tenant_id, idempotency_key)``: the same spec again returns
the stored job; a different spec under the same key is a :class:`StoreConflict`.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping
from dataclasses import dataclass, fields

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.protocol.api import JOB_TRANSITIONS, JobState
from byteleap.protocol.billing import DEFAULT_MAX_QUEUED_JOBS, DEFAULT_MAX_WORKERS
from byteleap.store.errors import IllegalTransition, RecordNotFound, StoreConflict
from byteleap.store.models import ApiKey, Job, Tenant
from byteleap.store.money import check_amount

# A row changed by another writer between our read and our guarded write: read again.
_RETRIES = 20


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: int
    name: str
    balance: float
    max_running_jobs: int
    max_queued_jobs: int
    created_at: int
    max_workers: int


@dataclass(frozen=True, slots=True)
class JobRecord:
    id: str
    tenant_id: int
    state: JobState
    spec_json: str
    idempotency_key: str | None
    attempts: int
    worker_id: str | None
    miner_hotkey: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    exit_code: int | None
    stdout_tail: str
    stderr_tail: str
    error: str | None
    cost: float
    price_per_s: float = 0.0  # of the worker the current attempt runs on


_TENANT_COLUMNS = [getattr(Tenant, f.name) for f in fields(TenantRecord)]
_JOB_COLUMNS = [getattr(Job, f.name) for f in fields(JobRecord)]
#: What ``advance_job`` / ``update_job`` may change besides the state.
JOB_FIELDS = frozenset(
    {
        "price_per_s",
        "attempts",
        "worker_id",
        "miner_hotkey",
        "started_at",
        "finished_at",
        "exit_code",
        "stdout_tail",
        "stderr_tail",
        "error",
        "cost",
    }
)
_TERMINAL = [s for s in JobState if s.is_terminal]


# -- tenants and keys ---------------------------------------------------------------------


async def create_tenant(
    s: AsyncSession,
    name: str,
    *,
    balance: float,
    max_running_jobs: int = DEFAULT_MAX_WORKERS,
    max_queued_jobs: int = DEFAULT_MAX_QUEUED_JOBS,
    max_workers: int = DEFAULT_MAX_WORKERS,
    at: int,
) -> TenantRecord:
    """A new tenant; :class:`StoreConflict` if the name is taken."""
    check_amount(balance, "balance")
    if max_running_jobs < 0 or max_queued_jobs < 0 or max_workers < 0:
        raise ValueError("quotas cannot be negative")
    taken = await s.scalar(sa.select(Tenant.id).where(Tenant.name == name))
    if taken is not None:
        raise StoreConflict(f"a tenant named {name!r} exists", entity="tenant", name=name)
    row = Tenant(
        name=name,
        balance=balance,
        max_running_jobs=max_running_jobs,
        max_queued_jobs=max_queued_jobs,
        max_workers=max_workers,
        created_at=at,
    )
    s.add(row)
    await s.flush()
    return await get_tenant(s, row.id)


async def get_tenant(s: AsyncSession, tenant_id: int) -> TenantRecord:
    row = (await s.execute(sa.select(*_TENANT_COLUMNS).where(Tenant.id == tenant_id))).first()
    if row is None:
        raise RecordNotFound(f"no tenant {tenant_id}", entity="tenant", id=tenant_id)
    return TenantRecord(*row)


async def add_api_key(s: AsyncSession, tenant_id: int, key_hash: str, *, at: int) -> None:
    """Store a key's sha256 hex for a tenant (:class:`RecordNotFound` for no such tenant)."""
    await get_tenant(s, tenant_id)
    s.add(ApiKey(tenant_id=tenant_id, key_hash=key_hash, created_at=at, revoked_at=None))
    await s.flush()


async def revoke_api_key(s: AsyncSession, key_hash: str, *, at: int) -> bool:
    """Revoke a key; False if it is unknown or already revoked."""
    result = await s.execute(
        sa.update(ApiKey)
        .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
        .values(revoked_at=at)
    )
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def tenant_by_key_hash(s: AsyncSession, key_hash: str) -> TenantRecord | None:
    """The tenant owning a live key; None for an unknown or revoked key."""
    stmt = (
        sa.select(*_TENANT_COLUMNS)
        .join(ApiKey, ApiKey.tenant_id == Tenant.id)
        .where(ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None))
    )
    row = (await s.execute(stmt)).first()
    return None if row is None else TenantRecord(*row)


# -- jobs ---------------------------------------------------------------------------------


def _insert(s: AsyncSession) -> sa.Insert:
    dialect = s.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(Job)


async def insert_job(s: AsyncSession, job: JobRecord) -> tuple[JobRecord, bool]:
    """Store a new job; ``(record, created)``.

    With an idempotency key already used by this tenant: the stored job and False if its
    ``spec_json`` is the same, :class:`StoreConflict` if it differs. A clash on the job
    id itself is a :class:`StoreConflict` too.
    """
    values = {f.name: getattr(job, f.name) for f in fields(JobRecord)}
    values["state"] = JobState(job.state)
    # Do-nothing on conflict instead of catching IntegrityError: safe against a
    # concurrent insert of the same key, and the transaction stays usable.
    stmt = _insert(s).values(**values).on_conflict_do_nothing()  # type: ignore[attr-defined]
    result = await s.execute(stmt)
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return await get_job(s, job.id), True
    existing = await _job_by_key(s, job.tenant_id, job.idempotency_key)
    if existing is None:
        raise StoreConflict(f"job id {job.id} is taken", entity="job", id=job.id)
    if existing.spec_json != job.spec_json:
        raise StoreConflict(
            f"idempotency key {job.idempotency_key!r} was used for a different job spec "
            f"(job {existing.id})",
            entity="job",
            id=existing.id,
            idempotency_key=job.idempotency_key,
        )
    return existing, False


async def _job_by_key(s: AsyncSession, tenant_id: int, key: str | None) -> JobRecord | None:
    if key is None:
        return None
    stmt = sa.select(*_JOB_COLUMNS).where(Job.tenant_id == tenant_id, Job.idempotency_key == key)
    row = (await s.execute(stmt)).first()
    return None if row is None else JobRecord(*row)


async def get_job(s: AsyncSession, job_id: str, *, tenant_id: int | None = None) -> JobRecord:
    """A job; :class:`RecordNotFound` if there is none, or it is another tenant's."""
    stmt = sa.select(*_JOB_COLUMNS).where(Job.id == job_id)
    if tenant_id is not None:
        stmt = stmt.where(Job.tenant_id == tenant_id)
    row = (await s.execute(stmt)).first()
    if row is None:  # the same answer either way: another tenant's job is not disclosed
        raise RecordNotFound(f"no job {job_id}", entity="job", id=job_id)
    return JobRecord(*row)


async def list_jobs(
    s: AsyncSession,
    *,
    tenant_id: int | None = None,
    states: Collection[JobState] | None = None,
    limit: int = 100,
    oldest_first: bool = False,
) -> list[JobRecord]:
    """Jobs, newest first (``oldest_first`` for a queue), optionally one tenant's / in states."""
    stmt = sa.select(*_JOB_COLUMNS)
    if tenant_id is not None:
        stmt = stmt.where(Job.tenant_id == tenant_id)
    if states is not None:
        stmt = stmt.where(Job.state.in_([JobState(x) for x in states]))
    if oldest_first:
        stmt = stmt.order_by(Job.created_at, Job.id)
    else:
        stmt = stmt.order_by(Job.created_at.desc(), Job.id.desc())
    return [JobRecord(*row) for row in await s.execute(stmt.limit(limit))]


async def count_jobs(s: AsyncSession, tenant_id: int, states: Collection[JobState]) -> int:
    """How many of a tenant's jobs are in ``states``."""
    if not states:
        return 0
    stmt = (
        sa.select(sa.func.count())
        .select_from(Job)
        .where(Job.tenant_id == tenant_id, Job.state.in_([JobState(x) for x in states]))
    )
    return int(await s.scalar(stmt) or 0)


def _job_values(given: Mapping[str, object]) -> dict[str, object]:
    unknown = set(given) - JOB_FIELDS
    if unknown:
        raise TypeError(f"not a job field: {', '.join(sorted(unknown))}")
    cost = given.get("cost", 0.0)
    if not isinstance(cost, int | float) or not math.isfinite(cost) or cost < 0:
        raise ValueError(f"job cost must be finite and >= 0, not {cost!r}")
    return dict(given)


def check_job_transition(current: JobState, new: JobState, *, job_id: str) -> None:
    """Raise :class:`IllegalTransition` unless ``current → new`` is in ``JOB_TRANSITIONS``."""
    if new not in JOB_TRANSITIONS[current]:
        why = "it is terminal" if current.is_terminal else "that move is not allowed"
        raise IllegalTransition(
            f"job {job_id}: cannot go from {current} to {new} ({why})",
            entity="job",
            id=job_id,
            current=str(current),
            new=str(new),
        )


async def advance_job(
    s: AsyncSession, job_id: str, state: JobState, *, at: float, **fields: object
) -> JobRecord:
    """Move a job to ``state`` if ``JOB_TRANSITIONS`` allows it, writing the given fields.

    Every field passed is written, None included (``worker_id=None`` clears it); omitted
    ones stay. A terminal state sets ``finished_at=at`` unless given.
    """
    state = JobState(state)
    values = _job_values(fields)
    values["state"] = state
    if state.is_terminal:
        values.setdefault("finished_at", at)
    current = await get_job(s, job_id)
    for _ in range(_RETRIES):
        check_job_transition(current.state, state, job_id=job_id)
        # Guarded by the state we checked, so a concurrent writer cannot slip past the table.
        # RETURNING hands back the row as written: no second read.
        row = (
            await s.execute(
                sa.update(Job)
                .where(Job.id == job_id, Job.state == current.state)
                .values(**values)
                .returning(*_JOB_COLUMNS)
            )
        ).first()
        if row is not None:
            return JobRecord(*row)
        current = await get_job(s, job_id)
    raise StoreConflict(f"job {job_id}: state kept changing", entity="job", id=job_id)


async def update_job(s: AsyncSession, job_id: str, **fields: object) -> JobRecord:
    """Write fields of a job that has not ended (e.g. its cost while running).

    An ended job's record is final: :class:`IllegalTransition`, nothing written.
    """
    values = _job_values(fields)
    if values:
        result = await s.execute(
            sa.update(Job).where(Job.id == job_id, Job.state.not_in(_TERMINAL)).values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            job = await get_job(s, job_id)  # RecordNotFound when there is none
            raise IllegalTransition(
                f"job {job_id} ended ({job.state}); its record is final",
                entity="job",
                id=job_id,
                current=str(job.state),
            )
    return await get_job(s, job_id)
