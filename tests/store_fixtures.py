"""Store fixtures: the same tests run on a SQLite file and on PostgreSQL.

PostgreSQL: each test session creates its own database ``byteleap_test_<random>``
on 127.0.0.1:5432 (through the ``test`` database) and drops it at the end; each
test starts from an empty ``public`` schema. Tests marked ``postgres`` skip when
the server is unreachable, which tests/conftest.py turns into a failure in CI
(BYTELEAP_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest

from byteleap.store import Store, open_store, upgrade

PG_HOST = os.environ.get("BYTELEAP_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("BYTELEAP_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("BYTELEAP_TEST_PG_USER", "postgres")
PG_ADMIN_DB = "test"

BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


async def _admin(sql: str, database: str = PG_ADMIN_DB) -> None:
    conn = await asyncpg.connect(
        host=PG_HOST, port=PG_PORT, user=PG_USER, database=database, timeout=5
    )
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A PostgreSQL database of this test session's own; its name."""
    name = f"byteleap_test_{secrets.token_hex(4)}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.skip(f"PostgreSQL at {PG_HOST}:{PG_PORT} unavailable: {exc}")
    yield name
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
async def pg_url(pg_database: str) -> str:
    """The session database, emptied: a fresh public schema for this test."""
    await _admin("DROP SCHEMA public CASCADE; CREATE SCHEMA public", database=pg_database)
    return f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}"


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(params=BACKENDS)
def empty_url(request: pytest.FixtureRequest) -> str:
    """An empty database URL, once per backend."""
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_url"))
    return str(request.getfixturevalue("sqlite_url"))


@pytest.fixture
async def store(empty_url: str) -> AsyncIterator[Store]:
    """An open store migrated to head, once per backend."""
    await upgrade(empty_url)
    opened = await open_store(empty_url)
    yield opened
    await opened.close()


@pytest.fixture
async def sqlite_store(sqlite_url: str) -> AsyncIterator[Store]:
    """An open SQLite store migrated to head, for tests of something else that keeps its state
    in a store (what depends on the database itself runs on both backends in tests/store)."""
    await upgrade(sqlite_url)
    opened = await open_store(sqlite_url)
    yield opened
    await opened.close()
