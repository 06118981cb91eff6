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
