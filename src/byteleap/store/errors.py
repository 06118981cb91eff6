"""Store errors, and the one place where driver errors become them.

    StoreError                 (reason "store")
     ├── StoreUnavailable      bad URL, cannot connect, connection lost ("store_unavailable")
     ├── StoreSchemaError      schema missing or not at the head revision ("store_schema")
     ├── StoreConflict         a uniqueness / foreign-key / check constraint refused a write
     │    └── AlreadyBilled    a period another writer billed first
     ├── StoreQueryError       the database rejected a statement for another reason
     ├── StoreBackupError      a backup or restore refused or failed (nothing restored)
     ├── RecordNotFound        a repository was asked to change a row that does not exist
     └── IllegalTransition     a status move the transition table does not allow (domain)

SQLAlchemy, asyncpg, sqlite3 and socket errors are translated by
:func:`translate_error`, called only at the engine edge (``Store.session``,
``Store.connect``, migrations); repositories never catch driver errors.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

import sqlalchemy.exc as sa_exc

from byteleap.errors import ByteleapError


class StoreError(ByteleapError):
    reason = "store"


class StoreUnavailable(StoreError):
    reason = "store_unavailable"


class StoreSchemaError(StoreError):
    reason = "store_schema"


class StoreConflict(StoreError):
    reason = "store_conflict"


class AlreadyBilled(StoreConflict):
    """A period was billed by another writer (another gateway replica) first."""

    reason = "already_billed"


class StoreQueryError(StoreError):
    reason = "store_query"


class StoreBackupError(StoreError):
    reason = "store_backup"


class RecordNotFound(StoreError):
    reason = "not_found"


class IllegalTransition(StoreError):
    reason = "illegal_transition"


# PostgreSQL SQLSTATE prefixes that mean "the server cannot be used now",
# not "the statement was wrong": connection exceptions, bad role/password,
# unknown database, too many connections, shutdowns.
_UNAVAILABLE_SQLSTATES = ("08", "28", "3D000", "53300", "57P")
_SCHEMA_SQLSTATES = ("42P01", "42703", "3F000")  # undefined table / column / schema
_SQLITE_UNAVAILABLE = (
    "unable to open",
    "database is locked",
    "disk i/o",
    "readonly database",
    "not a database",
    "malformed",
)
_SQLITE_SCHEMA = ("no such table", "no such column")


def _driver_message(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    cause = orig.__cause__ if orig is not None and orig.__cause__ is not None else orig
    try:
        text = str(cause if cause is not None else exc).strip()
    except Exception:  # some SQLAlchemy errors format themselves from state they lack
        text = ""
    return text.splitlines()[0] if text else type(exc).__name__


def _sqlstate(exc: sa_exc.DBAPIError) -> str:
    orig = exc.orig
    for candidate in (orig, getattr(orig, "__cause__", None)):
        state = getattr(candidate, "sqlstate", None) or getattr(candidate, "pgcode", None)
        if isinstance(state, str):
            return state
    return ""


def _classify_dbapi(exc: BaseException) -> type[StoreError]:
    assert isinstance(exc, sa_exc.DBAPIError)
    state = _sqlstate(exc)
    text = _driver_message(exc).lower()
    if state.startswith(_UNAVAILABLE_SQLSTATES) or any(s in text for s in _SQLITE_UNAVAILABLE):
        return StoreUnavailable
    if state.startswith(_SCHEMA_SQLSTATES) or any(s in text for s in _SQLITE_SCHEMA):
        return StoreSchemaError
    if isinstance(exc, sa_exc.IntegrityError):
        return StoreConflict
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError):
        return StoreUnavailable
    if exc.connection_invalidated:
        return StoreUnavailable
    return StoreQueryError


def _bad_url(exc: BaseException) -> type[StoreError]:
    return StoreUnavailable


# The mapping, most specific first. Each entry: (error class, StoreError class or classifier).
ERROR_MAP: tuple[tuple[type[BaseException], Callable[[BaseException], type[StoreError]]], ...] = (
    (sa_exc.DBAPIError, _classify_dbapi),
    (sa_exc.ArgumentError, _bad_url),  # unparsable URL / unknown options
    (sa_exc.NoSuchModuleError, _bad_url),  # unknown driver in the URL
    (sa_exc.TimeoutError, lambda _e: StoreUnavailable),  # pool exhausted
    (sa_exc.DisconnectionError, lambda _e: StoreUnavailable),
    (sa_exc.ResourceClosedError, lambda _e: StoreUnavailable),
    (sa_exc.NoResultFound, lambda _e: RecordNotFound),
    (sa_exc.SQLAlchemyError, lambda _e: StoreQueryError),
    (sqlite3.Error, lambda _e: StoreUnavailable),
    (TimeoutError, lambda _e: StoreUnavailable),  # asyncio.TimeoutError is this on 3.11
    (OSError, lambda _e: StoreUnavailable),  # refused, unreachable, DNS failure
)


def _asyncpg_error(exc: BaseException) -> type[StoreError] | None:
    try:
        import asyncpg
    except ImportError:  # pragma: no cover - asyncpg is a hard dependency
        return None
    if isinstance(exc, asyncpg.PostgresError):
        state = str(getattr(exc, "sqlstate", "") or "")
        if state.startswith(_UNAVAILABLE_SQLSTATES):
            return StoreUnavailable
        if state.startswith(_SCHEMA_SQLSTATES):
            return StoreSchemaError
        return StoreConflict if state.startswith("23") else StoreQueryError
    if isinstance(exc, asyncpg.InterfaceError):
        return StoreUnavailable
    return None


def translate_error(exc: BaseException, target: str) -> StoreError | None:
    """The StoreError for a driver/SQLAlchemy/socket error, or None if ``exc`` is not one.

    ``target`` names what was being reached (``postgresql host:port/db`` or the
    SQLite file) so the message says where the problem is.
    """
    if isinstance(exc, StoreError):
        return exc
    kind = _asyncpg_error(exc)
    if kind is None:
        for cls, classify in ERROR_MAP:
            if isinstance(exc, cls):
                kind = classify(exc)
                break
    if kind is None:
        return None
    detail = _driver_message(exc)
    what = {
        StoreUnavailable: "cannot use the database at",
        StoreSchemaError: "schema problem in",
        StoreConflict: "write refused by a constraint in",
        StoreQueryError: "statement failed in",
        RecordNotFound: "row not found in",
    }.get(kind, "error in")
    return kind(
        f"{what} {target}: {type(exc).__name__}: {detail}",
        target=target,
        driver_error=type(exc).__name__,
    )
