"""`byteleap miner run | token new | worker revoke ID | workers`."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from byteleap.commands.common import ConfigOption, settings_for
from byteleap.config import MinerSettings
from byteleap.logs import configure_logging
from byteleap.protocol.hardware import HardwareInventory

app = typer.Typer(no_args_is_help=True, add_completion=False)
token_app = typer.Typer(no_args_is_help=True, add_completion=False)
worker_app = typer.Typer(no_args_is_help=True, add_completion=False)
app.add_typer(token_app, name="token", help="One-time enrollment tokens for workers.")
app.add_typer(worker_app, name="worker", help="Manage enrolled workers.")


@app.command("run")
def run(config: ConfigOption = None) -> None:
    """Register on the chain, publish the axon with its TLS key and serve."""
    from byteleap.miner.runner import run_miner

    settings = settings_for(MinerSettings, config)
    configure_logging(settings.log_level)
    asyncio.run(run_miner(settings))


@token_app.command("new")
def token_new(
    config: ConfigOption = None,
    ttl: Annotated[float | None, typer.Option(help="Seconds the token stays valid.")] = None,
) -> None:
    """Print a one-time token a worker uses to enroll (it also pins this miner's TLS key)."""
    from byteleap.miner.runner import ledger_for
    from byteleap.net.tls import load_or_create_identity

    settings = settings_for(MinerSettings, config)
    identity = load_or_create_identity(settings.state_dir)
    ledger = ledger_for(settings)
    try:
        typer.echo(ledger.new_token(identity.public_key.hex(), ttl or settings.token_ttl_s))
    finally:
        ledger.close()


@worker_app.command("revoke")
def worker_revoke(worker_id: str, config: ConfigOption = None) -> None:
    """Cut a worker off: it is disconnected at its next heartbeat and refused after."""
    from byteleap.miner.runner import ledger_for

    ledger = ledger_for(settings_for(MinerSettings, config))
    try:
        ledger.revoke(worker_id)
    finally:
        ledger.close()
    typer.echo(f"revoked {worker_id}")


@app.command("workers")
def workers(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The worker registry as the running miner last recorded it."""
    from byteleap.miner.runner import ledger_for

    ledger = ledger_for(settings_for(MinerSettings, config))
    try:
        rows = ledger.rows()
    finally:
        ledger.close()
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    table = Table(title="workers")
    for column in ("worker", "state", "profile", "hardware", "ip", "last seen", "revoked"):
        table.add_column(column)
    now = time.time()
    for row in rows:
        hardware = HardwareInventory.model_validate_json(str(row["hardware"]))
        gpus = ", ".join(g.model for g in hardware.gpus) or f"CPU {hardware.cpu.cores_logical}c"
        table.add_row(
            str(row["worker_id"]),
            str(row["state"]),
            str(row["profile"]),
            gpus,
            str(row["ip"] or "-"),
            f"{now - float(str(row['last_seen'])):.0f}s ago",
            "yes" if row["revoked_at"] else "",
        )
    Console().print(table)
