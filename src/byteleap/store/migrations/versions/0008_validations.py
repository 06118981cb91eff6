"""output validation runs and lease liveness probes

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "output_validations",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("requested", sa.Boolean(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.Column("majority_digest", sa.String(length=64), nullable=True),
        sa.Column("refunded", sa.Float(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_output_validations_job_id_jobs")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_output_validations_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_output_validations")),
    )
    op.create_index(
        op.f("ix_output_validations_state"), "output_validations", ["state"], unique=False
    )
    op.create_table(
        "validation_runs",
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("run", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("miner_hotkey", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("stdout_sha256", sa.String(length=64), nullable=True),
        sa.Column("artifacts", sa.JSON(), nullable=True),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("faulty", sa.Boolean(), nullable=False),
        sa.Column("decided_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"],
            ["output_validations.job_id"],
            name=op.f("fk_validation_runs_job_id_output_validations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("job_id", "run", name=op.f("pk_validation_runs")),
    )
    op.create_index(
        "ix_validation_runs_faulty_miner",
        "validation_runs",
        ["faulty", "miner_hotkey"],
        unique=False,
    )
    op.create_table(
        "lease_health",
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("last_ok_at", sa.Float(), nullable=False),
        sa.Column("degraded_at", sa.Float(), nullable=True),
        sa.Column("reason", sa.String(length=32), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lease_id"], ["leases.id"], name=op.f("fk_lease_health_lease_id_leases")
        ),
        sa.PrimaryKeyConstraint("lease_id", name=op.f("pk_lease_health")),
    )
    op.create_table(
        "lease_probe_failures",
        sa.Column("id", BigId, nullable=False),
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("target", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lease_probe_failures")),
    )
    op.create_index(
        "ix_lease_probe_failures_lease_at",
        "lease_probe_failures",
        ["lease_id", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_lease_probe_failures_lease_at", table_name="lease_probe_failures")
    op.drop_table("lease_probe_failures")
    op.drop_table("lease_health")
    op.drop_index("ix_validation_runs_faulty_miner", table_name="validation_runs")
    op.drop_table("validation_runs")
    op.drop_index(op.f("ix_output_validations_state"), table_name="output_validations")
    op.drop_table("output_validations")
