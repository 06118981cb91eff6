"""Which schema revision the code needs (the head of the migration scripts) and which one a
database is at; the engine checks one against the other when a store opens."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy.engine import Connection

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migration scripts in byteleap/store/migrations/versions"
    return head


def is_known_revision(rev: str) -> bool:
    """Whether ``rev`` is one of this code's migrations (False for one written by newer code)."""
    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(rev) is not None
    except CommandError:
        return False


def revision_of(conn: Connection) -> str | None:
    """The revision the database is at, or None for an empty (unmigrated) database."""
    return MigrationContext.configure(conn).get_current_revision()
