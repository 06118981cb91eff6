"""The `byteleap` command line: one typer app that mounts each domain's commands.

The commands are mounted lazily: the app knows each one's name and help from `COMMANDS`, and
imports its module only when that command runs (or its own `--help` is asked for). A customer's
`byteleap jobs ...` so never imports the validator's store, bittensor or torch, and
`byteleap --help` imports no command module at all (issue 19).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from byteleap.errors import ByteleapError
from byteleap.logs import configure_logging


@dataclass(frozen=True)
class Lazy:
    """A command mounted by name: ``target`` is ``module:attribute``, a typer app when ``group``
    else a command function. ``help`` is what the listing shows; ``None`` takes the function's
    docstring when it loads, and then ``listing`` is its first line."""

    target: str
    help: str | None
    group: bool = False
    listing: str = ""


# In the order `byteleap --help` lists them (typer lists single commands before groups).
COMMANDS: dict[str, Lazy] = {
    "devnet": Lazy("devnet:devnet", "Start a local network and run the main job."),
    "init": Lazy("init:init", "Set up a role: config, wallet and systemd units."),
    "doctor": Lazy("doctor:doctor", "Check that this host can run a role; exit 1 on a failure."),
    "status": Lazy("status:status", "Summarise a running network from a gateway."),
    "balance": Lazy(
        "billing:balance",
        None,
        listing="Show your balance, what running work holds of it, and what new work may use.",
    ),
    "usage": Lazy(
        "billing:usage",
        None,
        listing="Show what you were charged, per job, lease and service and per day"
        " (default: the last 30 days).",
    ),
    "prices": Lazy(
        "billing:prices",
        None,
        listing="Show the price per GPU model and per CPU core, and the workers on offer for each.",
    ),
    "chain": Lazy("chain:app", "The local devnet chain and chain views.", group=True),
    "keys": Lazy("keys:app", "Create and list bittensor wallets.", group=True),
    "db": Lazy("db:app", "Database migrations for the validator store.", group=True),
    "config": Lazy("config_cmd:app", "Show the effective configuration.", group=True),
    "bench": Lazy(
        "bench:app", "Benchmarks (challenge, scoring, gateway, CLI startup).", group=True
    ),
    "validator": Lazy(
        "validator:app", "Run a validator: challenge rounds, scoring, weights.", group=True
    ),
    "miner": Lazy(
        "miner:app", "Run a miner that aggregates workers and serves validators.", group=True
    ),
    "worker": Lazy("worker:app", "Run a worker (one per GPU, or a CPU worker).", group=True),
    "gateway": Lazy("gateway:app", "Run the customer gateway; manage tenants.", group=True),
    "jobs": Lazy("jobs:app", "Submit and follow jobs on a gateway.", group=True),
    "leases": Lazy("leases:app", "Lease workers by the second.", group=True),
    "services": Lazy("services:app", "Deploy and scale inference services.", group=True),
}


def load(name: str) -> Any:
    """The click command for ``name``, built by typer exactly as an eager mount would."""
    lazy = COMMANDS[name]
    module, _, attribute = lazy.target.partition(":")
    try:
        loaded = importlib.import_module(f"byteleap.commands.{module}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.partition(".")[0] == "byteleap":
            raise
        # A client install (the base one) has no server roles' packages.
        typer.echo(
            f"error: `byteleap {name}` needs the server install (no module {exc.name!r} "
            "here): pip install 'byteleap[server]'",
            err=True,
        )
        raise typer.Exit(2) from None
    target = getattr(loaded, attribute)
    mount = typer.Typer()
    if lazy.group:
        mount.add_typer(target, name=name, help=lazy.help)
    else:
        mount.command(name, help=lazy.help)(target)
    return typer.main.get_group(mount).commands[name]


class LazyCommands(MutableMapping[str, Any]):
    """A group's ``commands`` whose keys are known up front and whose values load on first
    use; ``in`` and iteration import nothing."""

    def __init__(self, eager: MutableMapping[str, Any]) -> None:
        self.loaded: dict[str, Any] = dict(eager)

    def __getitem__(self, name: str) -> Any:
        if name not in self.loaded:
            if name not in COMMANDS:
                raise KeyError(name)
            self.loaded[name] = load(name)
        return self.loaded[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from COMMANDS
        yield from (name for name in self.loaded if name not in COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS.keys() | self.loaded.keys())

    def __contains__(self, name: object) -> bool:
        return name in COMMANDS or name in self.loaded


class LazyGroup(TyperGroup):
    """The top group: a listing (help, shell completion) shows a stand-in that carries only
    the name and help, so listing commands imports none of them."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = LazyCommands(self.commands)
        self._listing = False

    @contextmanager
    def _stand_ins(self) -> Iterator[None]:
        self._listing, was = True, self._listing
        try:
            yield
        finally:
            self._listing = was

    def list_commands(self, ctx: Any) -> list[str]:
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        commands = self.commands
        assert isinstance(commands, LazyCommands)
        lazy = COMMANDS.get(cmd_name)
        if self._listing and lazy is not None and cmd_name not in commands.loaded:
            return TyperCommand(name=cmd_name, help=lazy.help or lazy.listing)
        return commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        with self._stand_ins():
            super().format_help(ctx, formatter)

    def shell_complete(self, ctx: Any, incomplete: str) -> Any:
        with self._stand_ins():
            return super().shell_complete(ctx, incomplete)


app = typer.Typer(
    name="byteleap",
    help="byteleap: a decentralized GPU cloud for AI, run as a Bittensor subnet.",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,  # --install-completion / --show-completion for bash, zsh, fish
)


@app.callback()
def _root() -> None:
    # A callback keeps the app a group: typer would make a lone command the whole app.
    pass


def main() -> None:
    configure_logging("WARNING")
    try:
        app()
    except ByteleapError as exc:
        if _is_config_error(exc):
            typer.echo(f"config error: {exc}", err=True)
            sys.exit(2)
        typer.echo(f"error ({exc.reason}): {exc}", err=True)
        sys.exit(1)


def _is_config_error(exc: ByteleapError) -> bool:
    # byteleap.config loads the proof and scoring packages (numpy): a ConfigError can only have
    # been raised once that module is loaded, so look it up rather than import it for everyone.
    config = sys.modules.get("byteleap.config")
    return config is not None and isinstance(exc, config.ConfigError)


if __name__ == "__main__":
    main()
