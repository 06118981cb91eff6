"""output validation runs and lease liveness probes

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Reserved in the migration chain for output validation and lease liveness; filled in by that work.


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
