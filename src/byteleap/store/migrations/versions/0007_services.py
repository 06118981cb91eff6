"""inference services and their replicas

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Reserved in the migration chain for inference services; filled in by that work.


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
