"""inference services and their replicas

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "services",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("desired", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_services_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_services")),
    )
    op.create_index(op.f("ix_services_state"), "services", ["state"], unique=False)
    op.create_index(
        "ix_services_tenant_created", "services", ["tenant_id", "created_at"], unique=False
    )
    op.create_table(
        "service_replicas",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("miner_hotkey", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=300), nullable=True),
        sa.Column("gpu_model", sa.String(length=128), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("price_per_s", sa.Float(), nullable=False),
        sa.Column("unit_price_micro", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("billed_until", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("receipts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.CheckConstraint("cost >= 0 AND receipts >= 0", name=op.f("ck_service_replicas_billing")),
        sa.ForeignKeyConstraint(
            ["service_id"],
            ["services.id"],
            name=op.f("fk_service_replicas_service_id_services"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_service_replicas")),
    )
    op.create_index(op.f("ix_service_replicas_state"), "service_replicas", ["state"], unique=False)
    op.create_index(
        "ix_service_replicas_service_created",
        "service_replicas",
        ["service_id", "created_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_service_replicas_service_created", table_name="service_replicas")
    op.drop_index(op.f("ix_service_replicas_state"), table_name="service_replicas")
    op.drop_table("service_replicas")
    op.drop_index("ix_services_tenant_created", table_name="services")
    op.drop_index(op.f("ix_services_state"), table_name="services")
    op.drop_table("services")
