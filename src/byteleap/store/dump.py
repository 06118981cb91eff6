"""Backing up and restoring the store: ``pg_dump``/``pg_restore`` for PostgreSQL, SQLite's
online backup API for a SQLite file.

A backup is written beside its destination and renamed into place only when complete, so
``FILE`` is either the old file or a whole backup. A restore first reads the backup's schema
revision and refuses (nothing changed) a file that is not a store backup, a backup of the
other kind of database, or one newer than this code; PostgreSQL restores in one transaction
and SQLite's backup API replaces the database in one write, so a failed restore leaves the
database as it was. A backup at an older revision restores as it is: `byteleap db upgrade`
then brings it to head.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection

from byteleap.store.backup import (
    MAGIC_BYTES,
    BackupKind,
    Command,
    backup_kind,
    copied_revision,
    dump_tables,
    pg_dump_command,
    pg_list_command,
    pg_restore_command,
    pg_version_data_command,
)
from byteleap.store.engine import Store, open_store, parse_url, sqlite_path
from byteleap.store.errors import StoreBackupError
from byteleap.store.migrate import current_revision
from byteleap.store.revisions import head_revision, is_known_revision

log = logging.getLogger(__name__)

#: Called with (pages copied, pages in all) as a SQLite backup or restore goes.
Progress = Callable[[int, int], None]
_PAGES_PER_STEP = 1024
_TOOL_TIMEOUT_S = 6 * 3600.0  # a stuck tool must not hang a cron job forever


@dataclass(frozen=True)
class BackupSummary:
    kind: BackupKind
    file: Path
    revision: str
    tables: int
    rows: int | None  # None where counting would mean reading the whole database again
    bytes: int


def _error(message: str, target: str | Path) -> StoreBackupError:
    return StoreBackupError(message, target=str(target))


# -- backup ------------------------------------------------------------------------------


async def backup(url: str, file: Path, progress: Progress | None = None) -> BackupSummary:
    """Back up the store at ``url`` into ``file`` (replacing it once the backup is whole)."""
    parsed = parse_url(url)
    async with await open_store(url, require_head=False) as store:
        revision = await current_revision(store)
        if revision is None:
            raise _error(f"{store.target} has no schema: nothing to back up", store.target)
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_name(f".{file.name}.partial")
    try:
        if parsed.get_backend_name() == "sqlite":
            source = sqlite_path(parsed)
            if source is None:
                raise _error("an in-memory SQLite store cannot be backed up", str(parsed))
            tables, rows = await asyncio.to_thread(_sqlite_copy, source, partial, progress)
        else:
            await _run(
                pg_dump_command(parsed, str(partial), pg_dump=_tool("pg_dump")), _where(parsed)
            )
            tables, rows = len(await _pg_tables(partial)), None
        os.replace(partial, file)
    finally:
        partial.unlink(missing_ok=True)
    kind: BackupKind = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql"
    log.info("store backed up", extra={"file": str(file), "revision": revision})
    return BackupSummary(
        kind, file, revision, tables, rows, await asyncio.to_thread(os.path.getsize, file)
    )


def _sqlite_copy(
    source: Path, dest: Path, progress: Progress | None, *, check: bool = False
) -> tuple[int, int]:
    """Copy one SQLite database onto another with the online backup API; (tables, rows)."""
    src = sqlite3.connect(source)
    try:
        if check:
            _check_sqlite(src, source)
        dst = sqlite3.connect(dest)
        try:
            src.backup(dst, pages=_PAGES_PER_STEP, progress=_pages(progress))
            # The source's WAL mode travels in the file header: a backup is one plain file.
            if not check:
                dst.execute("PRAGMA journal_mode=DELETE")
            return _sqlite_counts(dst)
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise _error(f"SQLite copy {source} → {dest} failed: {exc}", dest) from None
    finally:
        src.close()


def _pages(progress: Progress | None) -> Callable[[int, int, int], object] | None:
    if progress is None:
        return None
    return lambda _status, remaining, total: progress(total - remaining, total)


def _sqlite_counts(conn: sqlite3.Connection) -> tuple[int, int]:
    names = [
        r[0]
        for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
        )
    ]
    rows = sum(conn.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names)
    return len(names), rows


def _check_sqlite(conn: sqlite3.Connection, path: Path) -> None:
    result = conn.execute("PRAGMA quick_check").fetchone()
    if result is None or result[0] != "ok":
        raise _error(f"{path} is a damaged SQLite database: {result}", path)


# -- restore -----------------------------------------------------------------------------


async def restore(url: str, file: Path, progress: Progress | None = None) -> BackupSummary:
    """Restore ``file`` over the store at ``url``; refuses, changing nothing, a file that
    is not a store backup of this kind of database or whose revision this code lacks."""
    parsed = parse_url(url)
    kind = _kind_of(file)
    want: BackupKind = "sqlite" if parsed.get_backend_name() == "sqlite" else "postgresql"
    if kind != want:
        raise _error(
            f"{file} is a {kind} backup and the store is {want}: "
            "a backup restores only into the kind of database it came from",
            file,
        )
    if kind == "sqlite":
        revision = await asyncio.to_thread(_sqlite_revision, file)
    else:
        tables_in_dump = await _pg_tables(file)
        if "alembic_version" not in tables_in_dump:
            raise _error(
                f"{file} is not a byteleap store backup: a PostgreSQL dump without its "
                "schema revision (alembic_version)",
                file,
            )
        revision = await _pg_revision(file)
    _check_revision(revision, file)
    async with await open_store(url, create=True, require_head=False) as store:
        if kind == "sqlite":
            target = sqlite_path(parsed)
            if target is None:
                raise _error("cannot restore into an in-memory SQLite store", store.target)
            await store.close()  # our pooled connection must not hold the file during the copy
            tables, rows = await asyncio.to_thread(_sqlite_copy, file, target, progress, check=True)
        else:
            await _check_no_extra_tables(store, tables_in_dump, revision)
            await _run(
                pg_restore_command(parsed, str(file), pg_restore=_tool("pg_restore")), parsed
            )
            counts = await store.run_sync(lambda c: _row_counts(c, tables_in_dump))
            tables, rows = len(counts), sum(counts.values())
    log.info("store restored", extra={"file": str(file), "revision": revision})
    return BackupSummary(
        kind, file, revision, tables, rows, await asyncio.to_thread(os.path.getsize, file)
    )


def _kind_of(file: Path) -> BackupKind:
    try:
        with file.open("rb") as f:
            head = f.read(MAGIC_BYTES)
    except OSError as exc:
        raise _error(f"cannot read {file}: {exc.strerror or exc}", file) from None
    kind = backup_kind(head)
    if kind is None:
        raise _error(
            f"{file} is not a store backup (neither a SQLite database nor a pg_dump "
            "custom-format file)",
            file,
        )
    return kind


def _sqlite_revision(file: Path) -> str:
    try:
        conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise _error(f"{file} is not a byteleap store backup: {exc}", file) from None
    if row is None:
        raise _error(f"{file} is not a byteleap store backup: it has no schema revision", file)
    return str(row[0])


def _check_revision(revision: str | None, file: Path) -> None:
    if revision is None:
        raise _error(f"{file} is not a byteleap store backup: it has no schema revision", file)
    if not is_known_revision(revision):
        raise _error(
            f"{file} is at schema revision {revision}, which this code (head {head_revision()}) "
            "does not know: it comes from a newer byteleap; restore it with that version",
            file,
        )


async def _check_no_extra_tables(store: Store, in_dump: set[str], revision: str) -> None:
    """Tables the dump does not have would outlive the restore under its older revision,
    and the next upgrade would fail creating them: refuse rather than mix two schemas."""
    present = await store.run_sync(lambda c: set(sa.inspect(c).get_table_names()))
    extra = sorted(present - in_dump)
    if extra:
        raise _error(
            f"{store.target} has tables the backup does not ({', '.join(extra)}): run "
            f"`byteleap db downgrade {revision}` first, or restore into an empty database",
            store.target,
        )


def _row_counts(conn: Connection, tables: Iterable[str]) -> dict[str, int]:
    counts = {}
    for name in sorted(tables):
        table = sa.table(name)
        counts[name] = int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
    return counts


# -- PostgreSQL tools --------------------------------------------------------------------


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise _error(
            f"{name} not found on PATH: install the PostgreSQL client tools "
            "(the server's major version or newer)",
            name,
        )
    return path


async def _pg_tables(file: Path) -> set[str]:
    listing = await _run(pg_list_command(str(file), pg_restore=_tool("pg_restore")), str(file))
    return dump_tables(listing)


async def _pg_revision(file: Path) -> str | None:
    cmd = pg_version_data_command(str(file), pg_restore=_tool("pg_restore"))
    return copied_revision(await _run(cmd, str(file)))


def _where(url: URL) -> str:
    return url.render_as_string(hide_password=True)


async def _run(cmd: Command, where: str) -> str:
    """Run a tool to the end; its stdout, or StoreBackupError with what it printed."""
    proc = await asyncio.create_subprocess_exec(
        *cmd.argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **cmd.env},
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), _TOOL_TIMEOUT_S)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        detail = err.decode(errors="replace").strip().splitlines()
        raise _error(
            f"{os.path.basename(cmd.argv[0])} failed on {where}: "
            + (" / ".join(detail[-3:]) or f"exit status {proc.returncode}"),
            where,
        )
    return out.decode(errors="replace")
