"""Opening the store: engine, sessions, and the error edge.

``open_store(url)`` returns a :class:`Store`; ``async with store.session() as s``
gives one transaction (committed on success, rolled back on error) in which the
repository functions run. Every SQLAlchemy/driver error that leaves a session,
a connection or a migration is translated here into a :class:`StoreError`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from byteleap.store.errors import StoreError, StoreSchemaError, StoreUnavailable, translate_error
from byteleap.store.revisions import head_revision, revision_of

log = logging.getLogger(__name__)

T = TypeVar("T")
SUPPORTED_DRIVERS = ("sqlite+aiosqlite", "postgresql+asyncpg")
CONNECT_TIMEOUT_S = 10.0


def parse_url(url: str) -> URL:
    """Parse and check a store URL; :class:`StoreUnavailable` names what is wrong."""
    try:
        parsed = make_url(url)
    except (sa.exc.ArgumentError, ValueError) as exc:
        raise StoreUnavailable(
            f"bad store URL {url!r}: {exc}", target=url, driver_error=type(exc).__name__
        ) from None
    if parsed.drivername not in SUPPORTED_DRIVERS:
        raise StoreUnavailable(
            f"unsupported store URL driver {parsed.drivername!r}: use "
            + " or ".join(f"{d}://" for d in SUPPORTED_DRIVERS),
            target=describe_target(parsed),
        )
    return parsed


def sqlite_path(url: URL) -> Path | None:
    """The database file of a SQLite URL; None for in-memory or non-SQLite URLs."""
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def describe_target(url: URL) -> str:
    """Where the URL points, for messages: ``sqlite file X`` or ``postgresql host:port/db``."""
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        return f"sqlite file {path}" if path is not None else "sqlite in-memory database"
    user = f"{url.username}@" if url.username else ""
    where = f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"
    return f"{url.get_backend_name()} {user}{where}"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # Foreign keys are off by default in SQLite; WAL lets readers run during writes.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def _make_engine(url: URL, *, echo: bool) -> AsyncEngine:
    kwargs: dict[str, Any] = {"echo": echo}
    if url.get_backend_name() == "sqlite":
        if sqlite_path(url) is None:
            # One shared connection, or each connection would see its own empty database.
            kwargs["poolclass"] = StaticPool
    else:
        kwargs["connect_args"] = {"timeout": CONNECT_TIMEOUT_S}
        kwargs["pool_pre_ping"] = True
    engine = create_async_engine(url, **kwargs)
    if url.get_backend_name() == "sqlite":
        sa.event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


class Store:
    """An open database: sessions, schema revision, migrations. Close it when done."""

    def __init__(self, engine: AsyncEngine, url: URL) -> None:
        self.engine = engine
        self.url = url
        self.target = describe_target(url)
        self.dialect = url.get_backend_name()
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)

    def _translated(self, exc: BaseException) -> StoreError | None:
        return translate_error(exc, self.target)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One transaction: commits when the block ends, rolls back if it raises."""
        try:
            async with self._sessions() as session, session.begin():
                yield session
        except Exception as exc:
            err = self._translated(exc)
            if err is None or err is exc:
                raise
            raise err from exc

    async def run_sync(self, fn: Callable[[Connection], T], *, transaction: bool = True) -> T:
        """Run ``fn(sync_connection)`` (Alembic, reflection) with errors translated."""
        try:
            if transaction:
                async with self.engine.begin() as conn:
                    return await conn.run_sync(fn)
            async with self.engine.connect() as conn:
                return await conn.run_sync(fn)
        except Exception as exc:
            err = self._translated(exc)
            if err is None or err is exc:
                raise
            raise err from exc

    async def ping(self) -> None:
        """Connect and run ``SELECT 1``; :class:`StoreUnavailable` if that fails."""
        await self.run_sync(lambda conn: conn.execute(sa.text("SELECT 1")), transaction=False)

    async def close(self) -> None:
        await self.engine.dispose()

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, ev: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def open_store(
    url: str, *, echo: bool = False, create: bool = False, require_head: bool = True
) -> Store:
    """Open the store at ``url`` and check that it answers.

    ``create``: allow a new SQLite file (and its folder) to be created; otherwise a
    missing file is :class:`StoreUnavailable`. ``require_head``: raise
    :class:`StoreSchemaError` unless the schema is at the newest migration.
    """
    parsed = parse_url(url)
    path = sqlite_path(parsed)
    if path is not None and not path.exists():
        if not create:
            raise StoreUnavailable(
                f"no database file at {path} (run `byteleap db upgrade` to create it)",
                target=describe_target(parsed),
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot create the folder for sqlite file {path}: {exc}",
                target=describe_target(parsed),
            ) from None
    store = Store(_make_engine(parsed, echo=echo), parsed)
    try:
        await store.ping()
        if require_head:
            await _check_head(store)
    except BaseException:
        await store.close()
        raise
    log.debug("store open: %s", store.target)
    return store


async def _check_head(store: Store) -> None:
    have, want = await store.run_sync(revision_of, transaction=False), head_revision()
    if have != want:
        raise StoreSchemaError(
            f"{store.target} is at schema revision {have or 'none'}, this code needs {want}: "
            "run `byteleap db upgrade`",
            target=store.target,
            revision=have,
            head=want,
        )
