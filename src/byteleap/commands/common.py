"""Pieces every command group shares: the --config option and settings loading."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, TypeVar

import typer

from byteleap.config import RoleSettings, load_settings

S = TypeVar("S", bound=RoleSettings)

ConfigOption = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="TOML config file.", dir_okay=False),
]


def settings_for(cls: type[S], config: Path | None) -> S:
    return load_settings(cls, config)


def not_built_yet(role: str) -> typer.Typer:
    """A command group that says clearly it is not built yet and exits non-zero."""
    group = typer.Typer(invoke_without_command=True, add_completion=False)

    @group.callback()
    def _not_built(ctx: typer.Context) -> None:
        typer.echo(f"byteleap {role}: not built yet in this version.", err=True)
        raise typer.Exit(3)

    return group
