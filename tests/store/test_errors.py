"""Driver errors become StoreErrors at the engine edge, and the mapping misses none."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from byteleap.errors import ByteleapError
from byteleap.store import (
    StoreConflict,
    StoreError,
    StoreQueryError,
    StoreSchemaError,
    StoreUnavailable,
    open_store,
)
from byteleap.store.errors import translate_error

TARGET = "postgresql u@h:5432/db"


def _dbapi(cls: type[sa_exc.DBAPIError], orig: BaseException) -> sa_exc.DBAPIError:
    return cls("SELECT 1", {}, orig)  # type: ignore[arg-type]


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_store_errors_share_the_byteleap_root() -> None:
    assert issubclass(StoreError, ByteleapError)
    for cls in _subclasses(StoreError):
        assert cls.reason != StoreError.reason, cls


@pytest.mark.parametrize(
    "cls", sorted(_subclasses(sa_exc.SQLAlchemyError), key=lambda c: c.__name__)
)
def test_every_sqlalchemy_error_is_translated(cls: type[sa_exc.SQLAlchemyError]) -> None:
    if issubclass(cls, sa_exc.DBAPIError):
        exc: BaseException = _dbapi(cls, Exception("boom"))
    else:
        try:
            exc = cls("boom")
        except (TypeError, AttributeError):
            # Some errors need ORM objects to build; the mapping only looks at the class.
            exc = cls.__new__(cls)
            Exception.__init__(exc, "boom")
    err = translate_error(exc, TARGET)
    assert isinstance(err, StoreError)
    assert TARGET in str(err)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (_dbapi(sa_exc.IntegrityError, sqlite3.IntegrityError("UNIQUE failed")), StoreConflict),
        (
            _dbapi(
                sa_exc.OperationalError, sqlite3.OperationalError("unable to open database file")
            ),
            StoreUnavailable,
        ),
        (
            _dbapi(sa_exc.OperationalError, sqlite3.OperationalError("database is locked")),
            StoreUnavailable,
        ),
        (
            _dbapi(sa_exc.OperationalError, sqlite3.OperationalError("no such table: miners")),
            StoreSchemaError,
        ),
        (
            _dbapi(sa_exc.ProgrammingError, asyncpg.UndefinedTableError("no relation")),
            StoreSchemaError,
        ),
        (
            _dbapi(sa_exc.DBAPIError, asyncpg.InvalidCatalogNameError('db "x" does not exist')),
            StoreUnavailable,
        ),
        (
            _dbapi(sa_exc.DBAPIError, asyncpg.InvalidAuthorizationSpecificationError("no role")),
            StoreUnavailable,
        ),
        (_dbapi(sa_exc.DBAPIError, asyncpg.CannotConnectNowError("starting up")), StoreUnavailable),
        (_dbapi(sa_exc.DataError, Exception("value too long")), StoreQueryError),
        (ConnectionRefusedError(111, "refused"), StoreUnavailable),
        (TimeoutError(), StoreUnavailable),
        (OSError(-2, "Name or service not known"), StoreUnavailable),
        (asyncpg.UniqueViolationError("dup"), StoreConflict),
        (asyncpg.ConnectionDoesNotExistError("closed"), StoreUnavailable),
        (asyncpg.InterfaceError("closed"), StoreUnavailable),
        (sqlite3.DatabaseError("file is not a database"), StoreUnavailable),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, BaseException) else v.__name__,
)
def test_mapping(exc: BaseException, expected: type[StoreError]) -> None:
    err = translate_error(exc, TARGET)
    assert type(err) is expected
    assert err is not None and err.context["target"] == TARGET


def test_non_database_errors_pass_through() -> None:
    assert translate_error(ValueError("not ours"), TARGET) is None
    assert translate_error(KeyError("x"), TARGET) is None


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("postgresql+asyncpg://nobody@127.0.0.1:1/x", ["127.0.0.1:1", "ConnectionRefusedError"]),
        ("postgresql+asyncpg://postgres@no-such-host.invalid/x", ["no-such-host.invalid"]),
        ("postgresql+asyncpg://postgres@127.0.0.1:notaport/x", ["notaport"]),
        ("mysql+pymysql://u@h/db", ["mysql+pymysql"]),
        ("not a url", ["not a url"]),
    ],
)
async def test_unreachable_urls_raise_store_unavailable(url: str, names: list[str]) -> None:
    with pytest.raises(StoreUnavailable) as info:
        await open_store(url)
    for name in names:
        assert name in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.postgres
async def test_missing_postgres_database_is_unavailable(pg_url: str) -> None:
    bad = pg_url.rsplit("/", 1)[0] + "/byteleap_no_such_db"
    with pytest.raises(StoreUnavailable, match=r"byteleap_no_such_db.*does not exist"):
        await open_store(bad)


async def test_sqlite_file_in_missing_folder(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'nope' / 'v.db'}"
    with pytest.raises(StoreUnavailable, match="no database file at"):
        await open_store(url)
    assert not (tmp_path / "nope").exists()


async def test_not_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreUnavailable, match=str(path)):
        await open_store(f"sqlite+aiosqlite:///{path}")


async def test_unmigrated_store_is_a_schema_error(empty_url: str) -> None:
    if empty_url.startswith("sqlite"):
        store = await open_store(empty_url, create=True, require_head=False)
        await store.close()
    with pytest.raises(StoreSchemaError, match="byteleap db upgrade"):
        await open_store(empty_url)


async def test_query_on_missing_table_is_translated_in_session(empty_url: str) -> None:
    store = await open_store(empty_url, create=True, require_head=False)
    try:
        with pytest.raises(StoreSchemaError):
            async with store.session() as s:
                await s.execute(sa.text("SELECT * FROM miners"))
    finally:
        await store.close()
