"""tenants' private WireGuard networks: subnets and epochs, members, refused joins

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "tenant_networks",
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("subnet", sa.String(length=18), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.CheckConstraint("epoch >= 0", name=op.f("ck_tenant_networks_epoch")),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], name=op.f("fk_tenant_networks_tenant_id_tenants")
        ),
        sa.PrimaryKeyConstraint("tenant_id", name=op.f("pk_tenant_networks")),
        sa.UniqueConstraint("subnet", name=op.f("uq_tenant_networks_subnet")),
    )
    op.create_table(
        "tenant_network_members",
        sa.Column("lease_id", sa.String(length=64), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=False),
        sa.Column("wire_id", sa.String(length=64), nullable=False),
        sa.Column("miner_hotkey", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.String(length=44), nullable=False),
        sa.Column("endpoint", sa.String(length=64), nullable=False),
        sa.Column("address", sa.String(length=15), nullable=False),
        sa.Column("joined_at", sa.Float(), nullable=False),
        sa.Column("left_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["lease_id"], ["leases.id"], name=op.f("fk_tenant_network_members_lease_id_leases")
        ),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant_networks.tenant_id"],
            name=op.f("fk_tenant_network_members_tenant_id_tenant_networks"),
        ),
        sa.PrimaryKeyConstraint("lease_id", name=op.f("pk_tenant_network_members")),
        sa.UniqueConstraint("public_key", name=op.f("uq_tenant_network_members_public_key")),
    )
    op.create_index(
        "ix_tenant_network_members_tenant_left",
        "tenant_network_members",
        ["tenant_id", "left_at"],
        unique=False,
    )
    op.create_table(
        "tenant_network_rejections",
        sa.Column("id", _BIG_ID, nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.Integer(), nullable=True),
        sa.Column("lease_id", sa.String(length=64), nullable=True),
        sa.Column("caller_hotkey", sa.String(length=64), nullable=True),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tenant_network_rejections")),
    )
    op.create_index(
        op.f("ix_tenant_network_rejections_at"), "tenant_network_rejections", ["at"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_tenant_network_rejections_at"), table_name="tenant_network_rejections")
    op.drop_table("tenant_network_rejections")
    op.drop_index("ix_tenant_network_members_tenant_left", table_name="tenant_network_members")
    op.drop_table("tenant_network_members")
    op.drop_table("tenant_networks")
