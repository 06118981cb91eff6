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
from byteleap.devnet.state import CHEATS


def devnet(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print only the JSON summary on stdout.")
    ] = False,
    miners: Annotated[int, typer.Option(min=1, max=16, help="Number of honest miners.")] = 3,
    workers: Annotated[
        int, typer.Option("--workers", min=1, max=8, help="CPU workers per miner.")
    ] = 2,
    cheaters: Annotated[
        int,
        typer.Option(
            min=0,
            max=len(CHEATS),
            help="Extra miners that cheat, one per cheat in this order (8 covers every "
            "miner-level cheat): " + ", ".join(CHEATS) + ".",
        ),
    ] = 0,
    cheat: Annotated[
        list[str] | None,
        typer.Option(help="Run exactly these cheats instead (repeat it), one miner each."),
    ] = None,
    home: Annotated[Path, typer.Option(help="Devnet state folder (wiped).")] = Path(".devnet"),
    block_time: Annotated[float, typer.Option(min=0.05, help="Seconds per block.")] = 0.25,
    keep_running: Annotated[
        bool,
        typer.Option(
            "--keep-running", help="Leave the network up; Ctrl-C then stops it and reports."
        ),
    ] = False,
    store: Annotated[
        str,
        typer.Option(
            help="The validator's and gateways' store: sqlite (a file in the home) or "
            "postgres (a fresh database on --postgres-url's server)."
        ),
    ] = "sqlite",
    postgres_url: Annotated[
        str, typer.Option(help="The database --store postgres creates (dropped first).")
    ] = "postgresql+asyncpg://postgres@127.0.0.1:5432/byteleap_devnet",
    gateways: Annotated[
        int, typer.Option(min=1, max=4, help="Gateway replicas (more than one: postgres).")
    ] = 1,
) -> None:
    """Start a local network and run the main job, printing progress and results."""
    # Progress goes to stderr so that stdout carries only the result.
    console = Console(stderr=True)
    unknown = sorted(set(cheat or ()) - set(CHEATS))
    if unknown or (cheat and cheaters):
        why = f"no such cheat: {', '.join(unknown)}" if unknown else "--cheat or --cheaters"
        raise typer.BadParameter(why)
    if store not in ("sqlite", "postgres"):
        raise typer.BadParameter(f"--store is sqlite or postgres, not {store!r}")
    if gateways > 1 and store != "postgres":
        raise typer.BadParameter(
            "--gateways above 1 needs --store postgres (SQLite is one process's)"
        )
    options = DevnetOptions(
        home=home,
        miners=miners,
        cheaters=cheaters,
        cheats=tuple(cheat or ()),
        workers_per_miner=workers,
        block_time_s=block_time,
        keep_running=keep_running,
        store=store,
        postgres_url=postgres_url,
        gateways=gateways,
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
        miners.add_column("share", justify="right")
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
                f"{m.weight_share:.1%}",
            )
        console.print(miners)
    _print_cheaters(console, summary)
    for lease in summary.leases:
        console.print(
            f"customer lease {lease.id}: {lease.state}, {lease.receipts} receipts, "
            f"{lease.amount:g} billed"
        )
    for wash in summary.wash_leases:
        if wash.lease_id is None:
            console.print(f"wash lease by {wash.miner[:10]}…: refused ({wash.refused})")
            continue
        whose = "its own worker" if wash.own_worker else "another miner's worker"
        console.print(
            f"wash lease {wash.lease_id} by {wash.miner[:10]}… on {whose} {wash.worker}: "
            f"{wash.state}, {wash.receipts} receipts, paid {wash.paid:g}"
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


def _print_cheaters(console: Console, summary: DevnetSummary) -> None:
    """Each cheat's share of the miners' weights, and all cheaters' together."""
    if summary.cheater_share is None:
        return
    shares: dict[str, float] = {}
    for m in summary.miners:
        if m.cheater is not None:
            shares[m.cheater] = shares.get(m.cheater, 0.0) + m.weight_share
    per_cheat = ", ".join(f"{cheat} {share:.1%}" for cheat, share in shares.items())
    console.print(f"cheaters' share of the weights: {summary.cheater_share:.1%} ({per_cheat})")
