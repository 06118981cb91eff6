"""gateway_leadership: which gateway replica runs the background passes, until when;
gateway_secrets: what every replica must share (the key that makes lease ids anonymous);
service_load_reports: each replica's recent load per service, summed by the autoscaler

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_leadership",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("holder", sa.String(length=128), nullable=False),
        sa.Column("term", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_gateway_leadership")),
    )
    op.create_table(
        "gateway_secrets",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_gateway_secrets")),
    )
    op.create_table(
        "service_load_reports",
        sa.Column("service_id", sa.String(length=64), nullable=False),
        sa.Column("gateway", sa.String(length=128), nullable=False),
        sa.Column("in_flight", sa.Float(), nullable=False),
        sa.Column("latency_p90_ms", sa.Float(), nullable=True),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("service_id", "gateway", name=op.f("pk_service_load_reports")),
    )


def downgrade() -> None:
    op.drop_table("service_load_reports")
    op.drop_table("gateway_secrets")
    op.drop_table("gateway_leadership")
