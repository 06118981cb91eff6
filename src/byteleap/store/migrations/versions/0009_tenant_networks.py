"""tenants' private WireGuard networks

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Reserved in the migration chain for tenant private networks; filled in by that work.


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
