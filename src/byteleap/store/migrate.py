"""Alembic, configured in code (no alembic.ini): upgrade, downgrade, current, head.

The migration scripts live in ``byteleap/store/migrations``. Each command runs on
a connection of an open :class:`Store`, so migrations share its error edge.
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import command
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from byteleap.store.engine import Store, open_store
from byteleap.store.errors import StoreSchemaError
from byteleap.store.revisions import alembic_config, revision_of

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x6279746C65617001  # "bytleap" + 1: any constant no other code locks on


async def current_revision(store: Store) -> str | None:
    """The revision the database is at, or None for an empty (unmigrated) database."""

    return await store.run_sync(revision_of, transaction=False)


async def _run(store: Store, action: str, rev: str) -> None:
    def migrate(conn: Connection) -> None:
        if conn.dialect.name == "postgresql":
            # Validator and gateways all upgrade on start: one at a time, and the later ones
            # find the schema at head (held to the end of this transaction).
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
        cfg = alembic_config(conn)
        try:
            if action == "upgrade":
                command.upgrade(cfg, rev)
            else:
                command.downgrade(cfg, rev)
        except CommandError as exc:
            raise StoreSchemaError(
                f"cannot {action} {store.target} to {rev!r}: {exc}", target=store.target
            ) from None

    await store.run_sync(migrate)
    log.info("store %s: %s to %s done", store.target, action, rev)


async def migrate_store(store: Store, action: str, rev: str) -> str | None:
    """Run ``upgrade``/``downgrade`` on an open store; returns the new revision."""
    await _run(store, action, rev)
    return await current_revision(store)


async def upgrade(url: str, rev: str = "head") -> str | None:
    """Migrate the database at ``url`` up to ``rev`` (creating a SQLite file if needed)."""
    async with await open_store(url, create=True, require_head=False) as store:
        return await migrate_store(store, "upgrade", rev)


async def downgrade(url: str, rev: str) -> str | None:
    """Migrate the database at ``url`` down to ``rev`` (``base`` drops everything)."""
    async with await open_store(url, require_head=False) as store:
        return await migrate_store(store, "downgrade", rev)


async def current(url: str) -> str | None:
    """The revision of the database at ``url`` (None when it has no schema yet)."""
    async with await open_store(url, require_head=False) as store:
        return await current_revision(store)
