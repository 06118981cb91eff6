"""`byteleap db …` commands: migrate, back up, restore and prune the validator store.

The URL is ``[validator] store.url`` from the config (``--config``, env
``BYTELEAP_STORE__URL``), or ``--url`` to override it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from byteleap.commands.common import ConfigOption, settings_for
from byteleap.config import ValidatorSettings
from byteleap.store import dump, migrate, open_store, revisions
from byteleap.store.dump import BackupSummary
from byteleap.store.errors import StoreError
from byteleap.store.retention import prune_store

app = typer.Typer(no_args_is_help=True, add_completion=False)

T = TypeVar("T")
UrlOption = Annotated[
    str | None,
    typer.Option("--url", help="Database URL; overrides store.url from the config."),
]


def _url(config: ConfigOption, url: str | None) -> str:
    return url if url is not None else settings_for(ValidatorSettings, config).store.url


def _run(work: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(work)
    except StoreError as exc:
        typer.echo(f"error ({exc.reason}): {exc}", err=True)
        raise typer.Exit(1) from None


@app.command()
def upgrade(
    rev: Annotated[str, typer.Argument(help="Target revision.")] = "head",
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Migrate the store up to REV (default: head), creating a SQLite file if needed."""
    now = _run(migrate.upgrade(_url(config, url), rev))
    typer.echo(f"at revision {now}")


@app.command()
def downgrade(
    rev: Annotated[str, typer.Argument(help="Target revision; 'base' drops every table.")],
    config: ConfigOption = None,
    url: UrlOption = None,
) -> None:
    """Migrate the store down to REV."""
    now = _run(migrate.downgrade(_url(config, url), rev))
    typer.echo(f"at revision {now or 'base'}")


@app.command()
def current(config: ConfigOption = None, url: UrlOption = None) -> None:
    """Print the store's current revision ('base' when it has no schema yet)."""
    rev = _run(migrate.current(_url(config, url)))
    head = revisions.head_revision()
    typer.echo(f"{rev or 'base'}{' (head)' if rev == head else ''}")


FileArgument = Annotated[Path, typer.Argument(help="The backup file.", dir_okay=False)]


@contextmanager
def _progress(what: str) -> Iterator[dump.Progress]:
    """A progress bar on stderr (pages copied, for SQLite; a spinner's worth otherwise)."""
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

    bar = Progress(
        TextColumn(what),
        BarColumn(),
        TaskProgressColumn(),
        console=Console(stderr=True),
        transient=True,
    )
    task = bar.add_task(what, total=None)
    with bar:
        yield lambda done, total: bar.update(task, completed=done, total=total)


def _summary(verb: str, s: BackupSummary) -> str:
    rows = "" if s.rows is None else f", {s.rows:,} rows"
    return (
        f"{verb} {s.kind} store at revision {s.revision}: {s.tables} tables{rows}, "
        f"{s.bytes:,} bytes ({s.file})"
    )


@app.command()
def backup(file: FileArgument, config: ConfigOption = None, url: UrlOption = None) -> None:
    """Back up the store into FILE (pg_dump custom format, or a SQLite copy)."""
    with _progress("backing up") as progress:
        summary = _run(dump.backup(_url(config, url), file, progress))
    typer.echo(_summary("backed up", summary))


@app.command()
def restore(file: FileArgument, config: ConfigOption = None, url: UrlOption = None) -> None:
    """Replace the store's contents with the backup in FILE."""
    with _progress("restoring") as progress:
        summary = _run(dump.restore(_url(config, url), file, progress))
    typer.echo(_summary("restored", summary))
    if summary.revision != revisions.head_revision():
        typer.echo("the backup predates this code's schema: run `byteleap db upgrade`")


@app.command()
def prune(config: ConfigOption = None, url: UrlOption = None) -> None:
    """Delete challenges older than challenge_retention_s (the validator does this each round)."""
    settings = settings_for(ValidatorSettings, config)
    target = url if url is not None else settings.store.url

    async def work() -> int:
        async with await open_store(target) as store:
            return await prune_store(
                store,
                now=time.time(),
                retention_s=settings.challenge_retention_s,
                lookback_s=settings.scoring.lease_challenge_window_min * 60.0,
            )

    deleted = _run(work())
    days = settings.challenge_retention_s / 86400
    typer.echo(f"deleted {deleted:,} challenges older than {days:g} days")
