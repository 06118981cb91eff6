"""leases: a tenant's reserved workers, their end, and how far billing has got

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:12:40.118204
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("spec_json", sa.Text(), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("miner_hotkey", sa.String(length=64), nullable=False),
        sa.Column("gpu_model", sa.String(length=128), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("price_per_s", sa.Float(), nullable=False),
        sa.Column("unit_price_micro", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=True),
        sa.Column("billed_until", sa.Float(), nullable=False),
        sa.Column("cost", sa.Float(), nullable=False),
        sa.Column("receipts", sa.Integer(), nullable=False),
        sa.Column("settled", sa.Boolean(), nullable=False),
        sa.CheckConstraint("cost >= 0", name=op.f("ck_leases_cost")),
        sa.CheckConstraint("gpu_count >= 0", name=op.f("ck_leases_gpu_count")),
        sa.CheckConstraint("billed_until <= ends_at", name=op.f("ck_leases_billed_until")),
        sa.CheckConstraint("receipts >= 0", name=op.f("ck_leases_receipts")),
        sa.CheckConstraint(
            "price_per_s >= 0 AND unit_price_micro >= 0", name=op.f("ck_leases_price")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_leases_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leases")),
    )
    op.create_index(op.f("ix_leases_state"), "leases", ["state"], unique=False)
    op.create_index("ix_leases_tenant_created", "leases", ["tenant_id", "created_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_leases_tenant_created", table_name="leases")
    op.drop_index(op.f("ix_leases_state"), table_name="leases")
    op.drop_table("leases")
