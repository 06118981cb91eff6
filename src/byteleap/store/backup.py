"""Backups of the store, the pure part: store URL → pg_dump / pg_restore command lines, what
kind of file a backup is, and what a custom-format dump's listing and data say.

Everything here is a function of its arguments (no processes, no files), so it is tested
directly; :mod:`byteleap.store.dump` runs the tools.

The connection goes to libpq as one conninfo string in ``--dbname`` (every value quoted, so
a database name holding ``=`` or spaces stays a name) and the password as ``PGPASSWORD`` in
the child's environment, never in its argv where ``ps`` would show it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from sqlalchemy.engine import URL

BackupKind = Literal["sqlite", "postgresql"]

SQLITE_MAGIC = b"SQLite format 3\x00"
PGDUMP_MAGIC = b"PGDMP"  # pg_dump --format=custom
MAGIC_BYTES = len(SQLITE_MAGIC)

# asyncpg's ``ssl=`` values that libpq spells the same as its sslmode; asyncpg's
# true/false spellings map onto libpq's.
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
_SSL_ALIASES = {"true": "require", "1": "require", "false": "disable", "0": "disable"}


@dataclass(frozen=True)
class Command:
    """A tool's argv and the environment it needs on top of the caller's."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)


def _quote(value: str) -> str:
    # libpq conninfo: single-quoted, with backslash and quote escaped by a backslash.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _query_value(url: URL, name: str) -> str | None:
    value = url.query.get(name)
    if isinstance(value, tuple):
        value = value[-1] if value else None
    return value


def libpq_connection(url: URL) -> Command:
    """The conninfo string (as the one argv item) and environment for a PostgreSQL URL.

    Driver tuning options in the query (``prepared_statement_cache_size``...) mean nothing
    to libpq and are left out; ``ssl``/``sslmode`` becomes ``sslmode``.
    """
    if url.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {url.render_as_string(hide_password=True)}")
    parts: dict[str, str] = {}
    host = url.host or _query_value(url, "host")
    if host:
        parts["host"] = host
    if url.port is not None:
        parts["port"] = str(url.port)
    if url.username:
        parts["user"] = url.username
    if url.database:
        parts["dbname"] = url.database
    ssl = _query_value(url, "sslmode") or _query_value(url, "ssl")
    if ssl is not None:
        mode = _SSL_ALIASES.get(ssl.lower(), ssl.lower())
        if mode not in _SSL_MODES:
            raise ValueError(f"unknown ssl mode {ssl!r} in the store URL")
        parts["sslmode"] = mode
    env = {"PGPASSWORD": url.password} if url.password else {}
    conninfo = " ".join(f"{k}={_quote(v)}" for k, v in parts.items())
    return Command([conninfo], env)


def pg_dump_command(url: URL, file: str, *, pg_dump: str = "pg_dump") -> Command:
    """``pg_dump --format=custom`` of the whole database into ``file``."""
    conn = libpq_connection(url)
    # --no-password: a server that wants one we lack is an error, not a prompt on the tty.
    argv = [pg_dump, "--format=custom", "--no-password", f"--file={file}"]
    return Command([*argv, f"--dbname={conn.argv[0]}"], conn.env)


def pg_restore_command(url: URL, file: str, *, pg_restore: str = "pg_restore") -> Command:
    """``pg_restore`` of ``file`` over the database: existing objects of the dump dropped
    first, ownership left to the connecting role, and all of it one transaction, so a
    restore that fails part way leaves the database as it was."""
    conn = libpq_connection(url)
    argv = [
        pg_restore,
        "--clean",
        "--if-exists",
        "--no-owner",
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        f"--dbname={conn.argv[0]}",
        file,
    ]
    return Command(argv, conn.env)


def pg_list_command(file: str, *, pg_restore: str = "pg_restore") -> Command:
    """``pg_restore --list``: the dump's table of contents (fails on a file that is not one)."""
    return Command([pg_restore, "--list", file])


def pg_version_data_command(file: str, *, pg_restore: str = "pg_restore") -> Command:
    """The dump's ``alembic_version`` rows, as the COPY text pg_restore would run."""
    return Command(
        [pg_restore, "--data-only", "--table=alembic_version", "--file=-", file],
    )


def backup_kind(head: bytes) -> BackupKind | None:
    """What a file that starts with ``head`` (at least :data:`MAGIC_BYTES` bytes) is."""
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PGDUMP_MAGIC):
        return "postgresql"
    return None


# One entry of ``pg_restore --list``: "123; 1259 16390 TABLE public miners postgres".
# ("TABLE DATA public miners postgres" is the same table's rows.)
_TOC_TABLE = re.compile(r"^\d+;\s+\d+\s+\d+\s+TABLE (?!DATA )(?P<schema>\S+) (?P<name>\S+)(?:\s|$)")


def dump_tables(listing: str) -> set[str]:
    """The tables a custom-format dump creates, from its ``pg_restore --list`` text."""
    tables = set()
    for line in listing.splitlines():
        match = _TOC_TABLE.match(line.strip())
        if match is not None:
            tables.add(match["name"])
    return tables


def copied_revision(copy_text: str) -> str | None:
    """The revision in the COPY block pg_restore prints for ``alembic_version``; None if the
    dump has no such rows."""
    rows: list[str] = []
    inside = False
    for line in copy_text.splitlines():
        if line.startswith("COPY ") and "alembic_version" in line:
            inside = True
        elif inside and line == "\\.":
            break
        elif inside:
            rows.append(line.strip())
    return rows[0] if rows else None
