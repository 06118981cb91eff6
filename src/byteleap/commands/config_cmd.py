"""`byteleap config show --role R`: print the effective configuration."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from byteleap.commands.common import ConfigOption
from byteleap.config import ROLES, ConfigError, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("show")
def show(
    role: Annotated[str, typer.Option(help=f"One of: {', '.join(ROLES)}.")] = "validator",
    config: ConfigOption = None,
) -> None:
    """Print the effective config of a role (defaults < TOML < env) as JSON."""
    if role not in ROLES:
        raise ConfigError(f"role: unknown role {role!r}; use one of {', '.join(ROLES)}")
    settings = load_settings(ROLES[role], config)
    typer.echo(json.dumps(settings.model_dump(mode="json"), indent=2, sort_keys=True))
