"""`byteleap devnet`: start a local network, run the main job, report."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from byteleap.devnet import DevnetOptions, DevnetSummary, run_devnet
from byteleap.devnet.run import summary_json


def devnet(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the JSON summary on stdout.")
    ] = False,
    miners: Annotated[int, typer.Option(min=1, max=16, help="Number of honest miners.")] = 3,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=8, help="CPU workers per miner.")
    ] = 2,
    cheaters: Annotated[
        int, typer.Option(min=0, max=8, help="Extra miners whose workers cheat.")
    ] = 0,
    home: Annotated[Path, typer.Option(help="Devnet state folder (wiped).")] = Path(".devnet"),
    block_time: Annotated[float, typer.Option(min=0.05, help="Seconds per block.")] = 0.25,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running", help="Leave the network up; Ctrl-C then stops it and reports."
        ),
    ] = False,
) -> None:
    """Start a local network and run the main job, printing progress and results."""
    # Progress goes to stderr so that stdout carries only the result.
    console = Console(stderr=True)
    options = DevnetOptions(
        home=home,
        miners=miners,
        cheaters=cheaters,
        workers_per_miner=workers,
        block_time_s=block_time,
        keep_running=keep_running,
    )
    try:
        summary = asyncio.run(run_devnet(options, console))
    except KeyboardInterrupt:
        console.print("stopped")
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(summary_json(summary)))
    else:
        _print_metagraph(summary)
    if not summary.ok:
        raise typer.Exit(1)


def _print_metagraph(summary: DevnetSummary) -> None:
    console = Console(file=sys.stdout)
    if summary.chain is not None:
        table = Table(title=f"metagraph at block {summary.chain.block}")
        for column in ("uid", "role", "hotkey", "stake", "permit"):
            table.add_column(column)
        for n in summary.neurons:
            table.add_row(
                str(n.uid), n.role, n.hotkey, f"{n.stake:g}", "yes" if n.validator_permit else ""
            )
        console.print(table)
    if summary.miners:
        miners = Table(title="miners: challenges, scores and the weights set on chain")
        for column in ("uid", "cheat", "workers", "passed", "failed", "challenge", "lease"):
            miners.add_column(column, justify="right")
        miners.add_column("weight", justify="right")
        for m in summary.miners:
            miners.add_row(
                str(m.uid),
                m.cheater or "",
                str(m.workers_online),
                str(m.challenges_passed),
                str(m.challenges_failed),
                f"{m.challenge_score:.3f}",
                f"{m.lease_score:.3f}",
                f"{m.weight:.3f}",
            )
        console.print(miners)
    for lease in summary.leases:
        console.print(
            f"customer lease {lease.id}: {lease.state}, {lease.receipts} receipts, "
            f"{lease.amount:g} billed"
        )
    for service in summary.services:
        console.print(
            f"customer service {service.id}: scaled to {service.replicas_max} replicas under "
            f"load and back to {service.replicas_after}; {service.requests_ok} requests served, "
            f"{service.requests_failed} failed, {service.cost:g} billed"
        )
    for job in summary.jobs:
        validated = f", validated: {job.validated}" if job.validated else ""
        console.print(
            f"customer job {job.id}: {job.state} on {job.worker} in {job.seconds}s{validated}"
        )
    console.print("[green]devnet ok[/]" if summary.ok else "[red]devnet failed[/]")
