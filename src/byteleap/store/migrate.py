"""Alembic, configured in code (no alembic.ini): upgrade, downgrade, current, head.

The migration scripts live in ``byteleap/store/migrations``. Each command runs on
a connection of an open :class:`Store`, so migrations share its error edge.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import sqlalchemy as sa
from alembic import command
from alembic.util import CommandError
from sqlalchemy.engine import Connection

from byteleap.store.engine import Store, open_store, sqlite_path
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

    async with _sqlite_file_lock(store):
        await store.run_sync(migrate)
    log.info("store %s: %s to %s done", store.target, action, rev)


@asynccontextmanager
async def _sqlite_file_lock(store: Store) -> AsyncIterator[None]:
    """SQLite's counterpart of the advisory lock: an exclusive ``flock`` on a file beside the
    database, held for the whole migration. Alembic runs SQLite DDL outside a transaction,
    so a validator and a gateway upgrading one file together (what `byteleap init` sets up)
    once interleaved, and one died of 'table chain_events already exists'."""
    path = sqlite_path(store.url)
    if path is None:
        yield
        return
    fd = os.open(path.with_name(path.name + ".migrate-lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


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
