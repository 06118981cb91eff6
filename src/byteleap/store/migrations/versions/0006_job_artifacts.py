"""job artifacts stored by the gateway

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Reserved in the migration chain for gateway-stored job artifacts; filled in by that work.


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
