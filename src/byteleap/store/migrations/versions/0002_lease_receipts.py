"""lease receipts: verified, doubly signed receipts that feed the lease score

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 13:33:42.543613
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "lease_receipts",
        sa.Column("receipt_id", sa.String(length=32), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("lease_id", sa.String(length=32), nullable=False),
        sa.Column("netuid", sa.Integer(), nullable=False),
        sa.Column("gateway_hotkey", sa.String(length=64), nullable=False),
        sa.Column("miner_hotkey", sa.String(length=64), nullable=False),
        sa.Column("worker_id", sa.String(length=128), nullable=False),
        sa.Column("gpu_model", sa.String(length=128), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.BigInteger(), nullable=False),
        sa.Column("period_end", sa.BigInteger(), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
        sa.Column("unit_price_micro", sa.BigInteger(), nullable=False),
        sa.Column("amount_micro", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("gateway_signature", sa.String(length=128), nullable=False),
        sa.Column("miner_signature", sa.String(length=128), nullable=False),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.CheckConstraint(
            "amount_micro >= 0 AND unit_price_micro >= 0", name=op.f("ck_lease_receipts_amount")
        ),
        sa.CheckConstraint("period_end > period_start", name=op.f("ck_lease_receipts_period")),
        sa.CheckConstraint(
            "seconds > 0 AND seconds <= period_end - period_start",
            name=op.f("ck_lease_receipts_seconds"),
        ),
        sa.PrimaryKeyConstraint("receipt_id", name=op.f("pk_lease_receipts")),
    )
    op.create_index(
        op.f("ix_lease_receipts_lease_id"), "lease_receipts", ["lease_id"], unique=False
    )
    op.create_index(
        "ix_lease_receipts_miner_end",
        "lease_receipts",
        ["miner_hotkey", "period_end"],
        unique=False,
    )
    op.create_index(
        op.f("ix_lease_receipts_period_end"), "lease_receipts", ["period_end"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_lease_receipts_period_end"), table_name="lease_receipts")
    op.drop_index("ix_lease_receipts_miner_end", table_name="lease_receipts")
    op.drop_index(op.f("ix_lease_receipts_lease_id"), table_name="lease_receipts")
    op.drop_table("lease_receipts")
