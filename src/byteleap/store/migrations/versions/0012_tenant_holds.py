"""tenant_holds: money set aside for each job, lease and service replica until it ends

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Work admitted before this revision has no hold: it is charged from the free balance.
    op.create_table(
        "tenant_holds",
        sa.Column("item_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_tenant_holds_amount")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_holds_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("item_id", name=op.f("pk_tenant_holds")),
    )
    op.create_index(op.f("ix_tenant_holds_tenant_id"), "tenant_holds", ["tenant_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_tenant_holds_tenant_id"), table_name="tenant_holds")
    op.drop_table("tenant_holds")
