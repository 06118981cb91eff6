"""workers: the enrolled public key each worker last listed, to flag one key under two workers;
lease receipts: an index to find a lease's first period

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable and no default: rows from before this revision get their key at the next listing.
    op.add_column("workers", sa.Column("public_key", sa.String(length=64), nullable=True))
    op.create_index("ix_lease_receipts_lease_start", "lease_receipts", ["lease_id", "period_start"])


def downgrade() -> None:
    op.drop_index("ix_lease_receipts_lease_start", table_name="lease_receipts")
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("public_key")
