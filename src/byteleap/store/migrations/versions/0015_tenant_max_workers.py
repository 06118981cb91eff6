"""tenants: max_workers, the most workers a tenant's leases, placed jobs and service replicas
hold at once

Revision ID: 0015
Revises: 0014
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Existing tenants get the default every new tenant gets (64 at this revision). The check
    # is on the column itself: SQLite adds it with the column, no copy of the table (a copy
    # would drop and re-create tenants under the api_keys that cascade from it).
    op.add_column(
        "tenants",
        sa.Column(
            "max_workers",
            sa.Integer(),
            sa.CheckConstraint("max_workers >= 0", name=op.f("ck_tenants_max_workers")),
            server_default=sa.text("64"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # Not a batch copy, for the reason above: SQLite (3.35+) drops a column in place,
        # its own check with it.
        op.execute("ALTER TABLE tenants DROP COLUMN max_workers")
    else:
        op.drop_column("tenants", "max_workers")  # its check goes with it
