"""SQLAlchemy models of the validator store.

Time: every timestamp column (``*_at``) is an integer of **UTC epoch seconds**;
durations (``*_s``) are float seconds; availability is counted in integer
5-minute buckets (``epoch_seconds // 300``). Integers keep SQLite and PostgreSQL
identical and make the 169-hour window arithmetic cheap. The exception is the
gateway's jobs, leases and ledger (``jobs.*_at``, ``leases.*_at``, ``tenant_ledger.at``):
float epoch seconds, because jobs and leases are billed and timed per second and a job's
submit → running latency is measured in milliseconds.

These classes stay inside ``byteleap.store``: repositories return plain records.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from byteleap.protocol.api import JobState, LeaseState
from byteleap.protocol.billing import DEFAULT_MAX_WORKERS
from byteleap.protocol.service_spec import ReplicaState, ServiceState
from byteleap.protocol.states import ChallengeStatus, WorkerState

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets BIGINT.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


class EnumText(sa.types.TypeDecorator[StrEnum]):
    """A StrEnum stored as its value in a VARCHAR (no native enum type to migrate)."""

    impl = sa.String(16)
    cache_ok = True

    def __init__(self, enum_cls: type[StrEnum]) -> None:
        super().__init__()
        self.enum_cls = enum_cls

    def process_bind_param(self, value: Any, dialect: Dialect) -> str | None:
        return None if value is None else self.enum_cls(value).value

    def process_result_value(self, value: Any, dialect: Dialect) -> StrEnum | None:
        return None if value is None else self.enum_cls(value)


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)


class Miner(Base):
    __tablename__ = "miners"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    hotkey: Mapped[str] = mapped_column(sa.String(64), unique=True)
    uid: Mapped[int | None] = mapped_column(sa.Integer, index=True)
    axon: Mapped[str | None] = mapped_column(sa.String(255))
    first_seen_at: Mapped[int] = mapped_column(sa.BigInteger)
    last_seen_at: Mapped[int] = mapped_column(sa.BigInteger)


class Worker(Base):
    __tablename__ = "workers"
    __table_args__ = (sa.UniqueConstraint("miner_id", "worker_key"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    miner_id: Mapped[int] = mapped_column(sa.ForeignKey("miners.id", ondelete="CASCADE"))
    worker_key: Mapped[str] = mapped_column(sa.String(128))
    state: Mapped[WorkerState] = mapped_column(EnumText(WorkerState))
    cpu_model: Mapped[str | None] = mapped_column(sa.String(128))
    cpu_cores: Mapped[int | None] = mapped_column(sa.Integer)
    ram_mb: Mapped[int | None] = mapped_column(sa.BigInteger)
    disk_mb: Mapped[int | None] = mapped_column(sa.BigInteger)
    first_seen_at: Mapped[int] = mapped_column(sa.BigInteger)
    last_seen_at: Mapped[int] = mapped_column(sa.BigInteger)
    # The worker's enrolled Ed25519 key (hex) as last listed: two workers with one key are one
    # box listed twice (byteleap.protocol.identity). NULL until the worker is listed again.
    public_key: Mapped[str | None] = mapped_column(sa.String(64))


class Gpu(Base):
    __tablename__ = "gpus"
    __table_args__ = (sa.UniqueConstraint("worker_id", "slot"),)

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(sa.ForeignKey("workers.id", ondelete="CASCADE"))
    slot: Mapped[int] = mapped_column(sa.Integer)
    model: Mapped[str] = mapped_column(sa.String(128))
    vram_mb: Mapped[int] = mapped_column(sa.BigInteger)
    uuid: Mapped[str | None] = mapped_column(sa.String(64))


class AvailabilitySpan(Base):
    """A run of consecutive online buckets ``[start_bucket, end_bucket)`` for one worker.

    Runs instead of one row per bucket: 25,600 workers × 2,028 buckets would be
    52 M rows; a mostly-online worker needs a handful of runs.
    """

    __tablename__ = "availability_spans"
    __table_args__ = (
        sa.CheckConstraint("end_bucket > start_bucket", name="nonempty"),
        sa.Index("ix_availability_spans_worker_end", "worker_id", "end_bucket"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    worker_id: Mapped[int] = mapped_column(sa.ForeignKey("workers.id", ondelete="CASCADE"))
    start_bucket: Mapped[int] = mapped_column(sa.BigInteger)
    end_bucket: Mapped[int] = mapped_column(sa.BigInteger, index=True)


class WorkerIp(Base):
    """One stretch of a worker seen at one IP; a new row means the IP changed."""

    __tablename__ = "worker_ips"
    __table_args__ = (sa.Index("ix_worker_ips_worker_last", "worker_id", "last_seen_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    worker_id: Mapped[int] = mapped_column(sa.ForeignKey("workers.id", ondelete="CASCADE"))
    ip: Mapped[str] = mapped_column(sa.String(45))
    first_seen_at: Mapped[int] = mapped_column(sa.BigInteger)
    last_seen_at: Mapped[int] = mapped_column(sa.BigInteger, index=True)


class Challenge(Base):
    __tablename__ = "challenges"
    __table_args__ = (sa.Index("ix_challenges_worker_issued", "worker_id", "issued_at"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    worker_id: Mapped[int] = mapped_column(sa.ForeignKey("workers.id", ondelete="CASCADE"))
    # Denormalised so per-miner scoring reads one table.
    miner_id: Mapped[int] = mapped_column(
        sa.ForeignKey("miners.id", ondelete="CASCADE"), index=True
    )
    profile: Mapped[str] = mapped_column(sa.String(16))
    n: Mapped[int] = mapped_column(sa.Integer)
    seed: Mapped[str] = mapped_column(sa.String(64))  # hex; needed to verify after a restart
    status: Mapped[ChallengeStatus] = mapped_column(EnumText(ChallengeStatus), index=True)
    failure_reason: Mapped[str | None] = mapped_column(sa.String(255))
    claimed_gpu: Mapped[str | None] = mapped_column(sa.String(128))
    root: Mapped[str | None] = mapped_column(sa.String(128))
    issued_at: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    deadline_at: Mapped[int] = mapped_column(sa.BigInteger)
    finished_at: Mapped[int | None] = mapped_column(sa.BigInteger)
    rtt_s: Mapped[float | None] = mapped_column(sa.Float)
    commit_s: Mapped[float | None] = mapped_column(sa.Float)  # receive − send of the root
    compute_s: Mapped[float | None] = mapped_column(sa.Float)  # commit_s − rtt_s
    throughput: Mapped[float | None] = mapped_column(sa.Float)  # verified FLOP/s, 2n³/compute_s


class WeightSet(Base):
    __tablename__ = "weight_sets"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    netuid: Mapped[int] = mapped_column(sa.Integer)
    block: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    version_key: Mapped[int] = mapped_column(sa.BigInteger)
    computed_at: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    accepted: Mapped[bool | None] = mapped_column(sa.Boolean)  # None: not submitted yet
    message: Mapped[str | None] = mapped_column(sa.String(500))


class WeightEntry(Base):
    __tablename__ = "weight_entries"

    weight_set_id: Mapped[int] = mapped_column(
        sa.ForeignKey("weight_sets.id", ondelete="CASCADE"), primary_key=True
    )
    uid: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    weight: Mapped[float] = mapped_column(sa.Float)


class ChainEvent(Base):
    __tablename__ = "chain_events"
    __table_args__ = (sa.Index("ix_chain_events_kind_at", "kind", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[int] = mapped_column(sa.BigInteger)
    block: Mapped[int | None] = mapped_column(sa.BigInteger, index=True)
    kind: Mapped[str] = mapped_column(sa.String(32))
    hotkey: Mapped[str | None] = mapped_column(sa.String(64))
    uid: Mapped[int | None] = mapped_column(sa.Integer)
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON)


class Receipt(Base):
    """A lease receipt the validator verified (both signatures), kept as signed.

    Every field of ``byteleap.net.receipts.LeaseReceipt`` is a column, so a stored receipt
    can be re-verified later; money is integer micro-units, never floats.
    """

    __tablename__ = "lease_receipts"
    __table_args__ = (
        sa.CheckConstraint("period_end > period_start", name="period"),
        sa.CheckConstraint("seconds > 0 AND seconds <= period_end - period_start", name="seconds"),
        sa.CheckConstraint("amount_micro >= 0 AND unit_price_micro >= 0", name="amount"),
        sa.Index("ix_lease_receipts_miner_end", "miner_hotkey", "period_end"),
        # A lease's first period in one index seek, however long the lease has run.
        sa.Index("ix_lease_receipts_lease_start", "lease_id", "period_start"),
    )

    receipt_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    version: Mapped[int] = mapped_column(sa.Integer)
    lease_id: Mapped[str] = mapped_column(sa.String(32), index=True)  # tenant-anonymous
    netuid: Mapped[int] = mapped_column(sa.Integer)
    gateway_hotkey: Mapped[str] = mapped_column(sa.String(64))
    miner_hotkey: Mapped[str] = mapped_column(sa.String(64))
    worker_id: Mapped[str] = mapped_column(sa.String(128))
    gpu_model: Mapped[str] = mapped_column(sa.String(128))
    gpu_count: Mapped[int] = mapped_column(sa.Integer)
    period_start: Mapped[int] = mapped_column(sa.BigInteger)
    period_end: Mapped[int] = mapped_column(sa.BigInteger, index=True)
    seconds: Mapped[int] = mapped_column(sa.BigInteger)
    unit_price_micro: Mapped[int] = mapped_column(sa.BigInteger)  # per GPU-second
    amount_micro: Mapped[int] = mapped_column(sa.BigInteger)
    currency: Mapped[str] = mapped_column(sa.String(16))
    gateway_signature: Mapped[str] = mapped_column(sa.String(128))  # hex sr25519
    miner_signature: Mapped[str] = mapped_column(sa.String(128))  # hex sr25519
    recorded_at: Mapped[int] = mapped_column(sa.BigInteger)


class Tenant(Base):
    """A gateway customer: its prepaid balance and its job quotas."""

    __tablename__ = "tenants"
    __table_args__ = (
        sa.CheckConstraint("balance >= 0", name="balance"),
        sa.CheckConstraint("max_running_jobs >= 0 AND max_queued_jobs >= 0", name="quotas"),
        sa.CheckConstraint("max_workers >= 0", name="max_workers"),
    )

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(100), unique=True)
    balance: Mapped[float] = mapped_column(sa.Float)
    max_running_jobs: Mapped[int] = mapped_column(sa.Integer)
    max_queued_jobs: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[int] = mapped_column(sa.BigInteger)
    # Workers held at once by its leases, placed jobs and live service replicas together;
    # 0 holds none (its work waits), the way to pause a tenant without losing its queue.
    max_workers: Mapped[int] = mapped_column(
        sa.Integer, server_default=sa.text(str(DEFAULT_MAX_WORKERS))
    )


class ApiKey(Base):
    """A tenant's API key, kept only as the sha256 hex of the key."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(sa.Integer, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(
        sa.ForeignKey("tenants.id", ondelete="CASCADE"), index=True
    )
    key_hash: Mapped[str] = mapped_column(sa.String(64), unique=True)
    created_at: Mapped[int] = mapped_column(sa.BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(sa.BigInteger)


class Job(Base):
    """A customer job through its lifecycle (``JOB_TRANSITIONS``), with its result and cost."""

    __tablename__ = "jobs"
    __table_args__ = (
        # NULL keys are distinct on SQLite and PostgreSQL: jobs without a key never collide.
        sa.UniqueConstraint("tenant_id", "idempotency_key"),
        sa.CheckConstraint("attempts >= 0", name="attempts"),
        sa.CheckConstraint("cost >= 0", name="cost"),
        sa.Index("ix_jobs_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # No cascade: a tenant's jobs are its billing history.
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"))
    state: Mapped[JobState] = mapped_column(EnumText(JobState), index=True)
    spec_json: Mapped[str] = mapped_column(sa.Text)
    idempotency_key: Mapped[str | None] = mapped_column(sa.String(200))
    attempts: Mapped[int] = mapped_column(sa.Integer)
    worker_id: Mapped[str | None] = mapped_column(sa.String(128))
    miner_hotkey: Mapped[str | None] = mapped_column(sa.String(64))
    created_at: Mapped[float] = mapped_column(sa.Float)
    started_at: Mapped[float | None] = mapped_column(sa.Float)
    finished_at: Mapped[float | None] = mapped_column(sa.Float)
    exit_code: Mapped[int | None] = mapped_column(sa.Integer)
    stdout_tail: Mapped[str] = mapped_column(sa.Text)
    stderr_tail: Mapped[str] = mapped_column(sa.Text)
    error: Mapped[str | None] = mapped_column(sa.Text)
    cost: Mapped[float] = mapped_column(sa.Float)
    # The running attempt's price, kept so a restarted gateway bills it the same.
    price_per_s: Mapped[float] = mapped_column(sa.Float, server_default=sa.text("0"))


class GatewayLeadership(Base):
    """A named role one gateway replica holds until ``expires_at`` (renewed as it runs);
    ``term`` grows with every change of holder."""

    __tablename__ = "gateway_leadership"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(sa.String(128))
    term: Mapped[int] = mapped_column(sa.BigInteger)
    expires_at: Mapped[float] = mapped_column(sa.Float)


class GatewaySecret(Base):
    """A secret every gateway replica must share (the key that makes lease ids anonymous)."""

    __tablename__ = "gateway_secrets"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(sa.LargeBinary)


class ServiceLoadReport(Base):
    """One gateway replica's recent load on one service (its requests through that replica):
    the replica running the autoscaler adds up every replica's fresh report."""

    __tablename__ = "service_load_reports"

    service_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    gateway: Mapped[str] = mapped_column(sa.String(128), primary_key=True)
    in_flight: Mapped[float] = mapped_column(sa.Float)
    latency_p90_ms: Mapped[float | None] = mapped_column(sa.Float)
    at: Mapped[float] = mapped_column(sa.Float)


class TenantHold(Base):
    """Money set aside from a tenant's balance for one billed item (a job, lease or service
    replica) until it ends: what new work may use is the balance less every hold."""

    __tablename__ = "tenant_holds"
    __table_args__ = (sa.CheckConstraint("amount >= 0", name="amount"),)

    # A job, lease or replica id; no foreign key, as in the ledger.
    item_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"), index=True)
    amount: Mapped[float] = mapped_column(sa.Float)
    created_at: Mapped[float] = mapped_column(sa.Float)


class LedgerEntry(Base):
    """One change of a tenant's balance: a charge (negative amount) or a credit (positive)."""

    __tablename__ = "tenant_ledger"
    __table_args__ = (
        sa.Index("ix_tenant_ledger_tenant_id_id", "tenant_id", "id"),
        sa.Index("ix_tenant_ledger_tenant_id_at", "tenant_id", "at"),  # usage over a window
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"))
    amount: Mapped[float] = mapped_column(sa.Float)
    balance_after: Mapped[float] = mapped_column(sa.Float)
    reason: Mapped[str] = mapped_column(sa.String(64))
    # A job id or any other billed thing (a lease); no foreign key for that reason.
    job_id: Mapped[str | None] = mapped_column(sa.String(64))
    at: Mapped[float] = mapped_column(sa.Float)


class Lease(Base):
    """A tenant's reservation of one worker until ``ends_at``, billed per second.

    ``billed_until`` is how far billing has got (never past ``ends_at``); ``settled`` marks
    the one final billing after the lease ended, after which the record is closed.
    """

    __tablename__ = "leases"
    __table_args__ = (
        sa.CheckConstraint("cost >= 0", name="cost"),
        sa.CheckConstraint("gpu_count >= 0", name="gpu_count"),
        sa.CheckConstraint("billed_until <= ends_at", name="billed_until"),
        sa.CheckConstraint("receipts >= 0", name="receipts"),
        sa.CheckConstraint("price_per_s >= 0 AND unit_price_micro >= 0", name="price"),
        sa.Index("ix_leases_tenant_created", "tenant_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    # No cascade: a tenant's leases are its billing history.
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"))
    state: Mapped[LeaseState] = mapped_column(EnumText(LeaseState), index=True)
    spec_json: Mapped[str] = mapped_column(sa.Text)
    worker_id: Mapped[str] = mapped_column(sa.String(128))
    miner_hotkey: Mapped[str] = mapped_column(sa.String(64))
    gpu_model: Mapped[str] = mapped_column(sa.String(128))
    gpu_count: Mapped[int] = mapped_column(sa.Integer)
    price_per_s: Mapped[float] = mapped_column(sa.Float)
    unit_price_micro: Mapped[int] = mapped_column(sa.BigInteger)  # per GPU- or core-second
    created_at: Mapped[float] = mapped_column(sa.Float)
    ends_at: Mapped[float] = mapped_column(sa.Float)
    ended_at: Mapped[float | None] = mapped_column(sa.Float)
    billed_until: Mapped[float] = mapped_column(sa.Float)
    cost: Mapped[float] = mapped_column(sa.Float)
    receipts: Mapped[int] = mapped_column(sa.Integer)
    settled: Mapped[bool] = mapped_column(sa.Boolean)
    # The worker key the lease was placed on; liveness heartbeats must be signed by it.
    worker_public_key: Mapped[str | None] = mapped_column(sa.String(64))


class Service(Base):
    """A tenant's inference service: its current spec and revision, and how many replicas
    the autoscaler wants (``desired``)."""

    __tablename__ = "services"
    __table_args__ = (sa.Index("ix_services_tenant_created", "tenant_id", "created_at"),)

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(sa.String(64))
    state: Mapped[ServiceState] = mapped_column(EnumText(ServiceState), index=True)
    spec_json: Mapped[str] = mapped_column(sa.Text)
    revision: Mapped[int] = mapped_column(sa.Integer)
    desired: Mapped[int] = mapped_column(sa.Integer)
    created_at: Mapped[float] = mapped_column(sa.Float)
    updated_at: Mapped[float] = mapped_column(sa.Float)


class ServiceReplica(Base):
    """One replica of a service on one worker, billed per second like a lease
    (``billed_until``, ``cost``, ``receipts``)."""

    __tablename__ = "service_replicas"
    __table_args__ = (
        sa.CheckConstraint("cost >= 0 AND receipts >= 0", name="billing"),
        sa.Index("ix_service_replicas_service_created", "service_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    service_id: Mapped[str] = mapped_column(sa.ForeignKey("services.id"))
    revision: Mapped[int] = mapped_column(sa.Integer)
    state: Mapped[ReplicaState] = mapped_column(EnumText(ReplicaState), index=True)
    worker_id: Mapped[str] = mapped_column(sa.String(128))
    miner_hotkey: Mapped[str] = mapped_column(sa.String(64))
    endpoint: Mapped[str | None] = mapped_column(sa.String(300))
    gpu_model: Mapped[str] = mapped_column(sa.String(128))
    gpu_count: Mapped[int] = mapped_column(sa.Integer)
    price_per_s: Mapped[float] = mapped_column(sa.Float)
    unit_price_micro: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[float] = mapped_column(sa.Float)
    ended_at: Mapped[float | None] = mapped_column(sa.Float)
    billed_until: Mapped[float] = mapped_column(sa.Float)
    cost: Mapped[float] = mapped_column(sa.Float)
    receipts: Mapped[int] = mapped_column(sa.Integer)
    error: Mapped[str | None] = mapped_column(sa.Text)


class JobArtifact(Base):
    """A file a job left in its artifacts dir: stored by the gateway (``rejected`` NULL, the
    bytes under the gateway's artifacts directory by their sha256) or rejected, with why."""

    __tablename__ = "job_artifacts"

    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    path: Mapped[str] = mapped_column(sa.String(1024), primary_key=True)
    size: Mapped[int] = mapped_column(sa.BigInteger)
    sha256: Mapped[str] = mapped_column(sa.String(64))
    rejected: Mapped[str | None] = mapped_column(sa.Text)
    recorded_at: Mapped[float] = mapped_column(sa.Float)


class OutputValidation(Base):
    """A deterministic job the gateway re-executes elsewhere to check its result.

    ``state``: pending → match | mismatch, or abandoned (no other miner could run it).
    """

    __tablename__ = "output_validations"

    job_id: Mapped[str] = mapped_column(sa.ForeignKey("jobs.id"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"))
    requested: Mapped[bool] = mapped_column(sa.Boolean)  # by the customer, else sampled
    state: Mapped[str] = mapped_column(sa.String(16), index=True)
    created_at: Mapped[float] = mapped_column(sa.Float)
    decided_at: Mapped[float | None] = mapped_column(sa.Float)
    majority_digest: Mapped[str | None] = mapped_column(sa.String(64))
    refunded: Mapped[float] = mapped_column(sa.Float)
    detail: Mapped[str] = mapped_column(sa.Text)


class ValidationRun(Base):
    """One run of a validated job: index 0 is the customer's own, later ones re-executions
    (unbilled). ``faulty`` marks a miner whose digest disagreed with the majority."""

    __tablename__ = "validation_runs"
    __table_args__ = (sa.Index("ix_validation_runs_faulty_miner", "faulty", "miner_hotkey"),)

    job_id: Mapped[str] = mapped_column(
        sa.ForeignKey("output_validations.job_id", ondelete="CASCADE"), primary_key=True
    )
    run: Mapped[int] = mapped_column(sa.Integer, primary_key=True, autoincrement=False)
    miner_hotkey: Mapped[str] = mapped_column(sa.String(64))
    worker_id: Mapped[str] = mapped_column(sa.String(128))
    state: Mapped[str] = mapped_column(sa.String(16))  # running | done | no_result
    digest: Mapped[str | None] = mapped_column(sa.String(64))
    exit_code: Mapped[int | None] = mapped_column(sa.Integer)
    stdout_sha256: Mapped[str | None] = mapped_column(sa.String(64))
    artifacts: Mapped[list[Any] | None] = mapped_column(sa.JSON)
    started_at: Mapped[float] = mapped_column(sa.Float)
    finished_at: Mapped[float | None] = mapped_column(sa.Float)
    error: Mapped[str | None] = mapped_column(sa.Text)
    faulty: Mapped[bool] = mapped_column(sa.Boolean)
    decided_at: Mapped[float | None] = mapped_column(sa.Float)  # of the verdict, for scoring


class LeaseHealth(Base):
    """How a lease answers its liveness probes: billing never passes ``last_ok_at``, and a
    degraded lease is billed no further."""

    __tablename__ = "lease_health"

    lease_id: Mapped[str] = mapped_column(sa.ForeignKey("leases.id"), primary_key=True)
    last_ok_at: Mapped[float] = mapped_column(sa.Float)
    degraded_at: Mapped[float | None] = mapped_column(sa.Float)
    reason: Mapped[str | None] = mapped_column(sa.String(32))
    detail: Mapped[str | None] = mapped_column(sa.Text)


class LeaseProbeFailure(Base):
    """One liveness probe of a lease that failed, with why."""

    __tablename__ = "lease_probe_failures"
    __table_args__ = (sa.Index("ix_lease_probe_failures_lease_at", "lease_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    lease_id: Mapped[str] = mapped_column(sa.String(64))
    at: Mapped[float] = mapped_column(sa.Float)
    target: Mapped[str] = mapped_column(sa.String(16))  # workload | access
    reason: Mapped[str] = mapped_column(sa.String(32))
    detail: Mapped[str] = mapped_column(sa.Text)


class TenantNetwork(Base):
    """A tenant's private WireGuard network: its /24 and the epoch of its last peer sets.

    ``epoch`` grows with every peer set issued for the network (members refuse anything not
    newer than what they applied); bumping it first also serialises membership changes.
    """

    __tablename__ = "tenant_networks"
    __table_args__ = (sa.CheckConstraint("epoch >= 0", name="epoch"),)

    # No cascade: the network outlives nothing of the tenant's billing history.
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenants.id"), primary_key=True)
    subnet: Mapped[str] = mapped_column(sa.String(18), unique=True)
    epoch: Mapped[int] = mapped_column(sa.BigInteger)
    created_at: Mapped[float] = mapped_column(sa.Float)


class TenantNetworkMember(Base):
    """A lease in its tenant's network; kept after it left (``left_at``) so its public key
    can never be used again."""

    __tablename__ = "tenant_network_members"
    __table_args__ = (sa.Index("ix_tenant_network_members_tenant_left", "tenant_id", "left_at"),)

    lease_id: Mapped[str] = mapped_column(sa.ForeignKey("leases.id"), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(sa.ForeignKey("tenant_networks.tenant_id"))
    wire_id: Mapped[str] = mapped_column(sa.String(64))  # the lease id its miner knows
    miner_hotkey: Mapped[str] = mapped_column(sa.String(64))
    public_key: Mapped[str] = mapped_column(sa.String(44), unique=True)
    endpoint: Mapped[str] = mapped_column(sa.String(64))
    address: Mapped[str] = mapped_column(sa.String(15))
    joined_at: Mapped[float] = mapped_column(sa.Float)
    left_at: Mapped[float | None] = mapped_column(sa.Float)


class TenantNetworkRejection(Base):
    """A refused join request, with who signed it, what it claimed and why it was refused."""

    __tablename__ = "tenant_network_rejections"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[float] = mapped_column(sa.Float, index=True)
    reason: Mapped[str] = mapped_column(sa.String(32))
    # What the request claimed, unverified: no foreign keys.
    tenant_id: Mapped[int | None] = mapped_column(sa.Integer)
    lease_id: Mapped[str | None] = mapped_column(sa.String(64))
    caller_hotkey: Mapped[str | None] = mapped_column(sa.String(64))
    detail: Mapped[str] = mapped_column(sa.String(500))
