"""`byteleap db …` commands: migrate the validator store.

The URL is ``[validator] store.url`` from the config (``--config``, env
``BYTELEAP_STORE__URL``), or ``--url`` to override it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Annotated, Any, TypeVar

import typer

from byteleap.commands.common import ConfigOption, settings_for
from byteleap.config import ValidatorSettings
from byteleap.store import migrate, revisions
from byteleap.store.errors import StoreError

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
