"""tenant_ledger: an index on (tenant_id, at), so a tenant's usage over a window reads only
that window's rows

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_tenant_ledger_tenant_id_at", "tenant_ledger", ["tenant_id", "at"])


def downgrade() -> None:
    op.drop_index("ix_tenant_ledger_tenant_id_at", table_name="tenant_ledger")
