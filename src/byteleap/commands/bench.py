"""`byteleap bench …`: benchmarks that print one JSON object (or a table).

Each benchmark's logic lives next to what it measures (``proof.bench``,
``scoring.bench``); this module only parses options and prints.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(no_args_is_help=True, add_completion=False)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object.")]


def _emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in result.items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console().print(table)


@app.command("challenge")
def challenge(
    n: Annotated[int, typer.Option(min=2, help="Matrix size.")] = 2000,
    profile: Annotated[
        str,
        typer.Option(help="auto | cpu-f64 | cuda-f16 | cuda-i8 (auto: cpu-f64 up to its n)"),
    ] = "auto",
    verify_only: Annotated[
        bool, typer.Option("--verify-only", help="Measure verification alone.")
    ] = False,
    repeats: Annotated[
        int, typer.Option(min=1, help="Best of this many runs (2-core machines are noisy).")
    ] = 9,
    as_json: JsonFlag = False,
) -> None:
    """Time one proof-of-compute challenge against a bare matmul of the same size."""
    from byteleap.proof.bench import run_challenge_bench

    result = run_challenge_bench(n, profile, verify_only=verify_only, repeats=repeats)
    _emit(result, as_json, f"challenge n={n} {profile}")


@app.command("scoring")
def scoring(
    workers: Annotated[int, typer.Option(min=1, help="Workers in the network.")] = 25600,
    hours: Annotated[int, typer.Option(min=1, help="Hours of availability history.")] = 169,
    url: Annotated[
        str | None,
        typer.Option(help="Store URL; default: a fresh PostgreSQL database, dropped after."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fill a store with synthetic history and time a full score + weights computation."""
    import asyncio

    from byteleap.validator.bench import run_scale_bench

    result = asyncio.run(run_scale_bench(workers, hours, url=url))
    _emit(result, as_json, f"scoring {workers} workers, {hours} h")


@app.command("network")
def network(
    rounds: Annotated[int, typer.Option(min=1, help="Simulated challenge rounds.")] = 45,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Simulate honest and cheating miners through real verification and real scoring."""
    from byteleap.scoring.simulation import run_network_simulation

    result = run_network_simulation(rounds, seed)
    _emit(result, as_json, f"network simulation, {rounds} rounds")


@app.command("gateway")
def gateway(
    workers: Annotated[int, typer.Option(min=1, help="Simulated CPU workers.")] = 1000,
    jobs: Annotated[int, typer.Option(min=1, help="Jobs to submit.")] = 1000,
    rate: Annotated[float, typer.Option(min=0.1, help="Submissions per second.")] = 25.0,
    as_json: JsonFlag = False,
) -> None:
    """Submit → running latency and jobs per minute through the real gateway and executor."""
    import asyncio

    from byteleap.cloud.gateway.bench import run_gateway_bench

    result = asyncio.run(run_gateway_bench(workers, jobs, rate))
    _emit(result, as_json, f"gateway: {jobs} jobs on {workers} simulated workers")
