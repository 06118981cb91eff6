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


def _flat(result: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    rows: dict[str, Any] = {}
    for key, value in result.items():
        if isinstance(value, dict) and value:
            rows.update(_flat(value, f"{prefix}{key}."))
        else:
            rows[prefix + key] = value
    return rows


def _emit(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in _flat(result).items():
        if key == "steps":  # a ramp: one row per rate tried
            for step in value:
                table.add_row(
                    f"{step['submit_rate_per_s']:g}/s",
                    f"p99 {step['submit_to_running_p99_s']} s, {step['jobs_per_min']} jobs/min",
                )
            continue
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


@app.command("validator")
def validator(
    workers: Annotated[
        int, typer.Option(min=1, help="Workers challenged in the round (a full subnet: 25600).")
    ] = 256,
    n: Annotated[int, typer.Option(min=1, help="Challenge size (cuda-f16).")] = 32768,
    products: Annotated[int, typer.Option(min=1, help="Products per challenge.")] = 1,
    store: Annotated[
        str, typer.Option(help="postgres (a scratch database, dropped after) | sqlite")
    ] = "postgres",
    url: Annotated[str | None, typer.Option(help="Store URL instead of a scratch one.")] = None,
    blas_threads: Annotated[
        int, typer.Option(min=0, help="BLAS threads in the validator (0: the library's default).")
    ] = 1,
    profile: Annotated[
        str | None, typer.Option(help="Also write a cProfile of the validator to this file.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """One real validator round (store, TLS, btauth/1, verification) against synthetic miners:
    the validator's CPU per challenge by stage, and the round one core covers."""
    import asyncio

    from byteleap.devnet.validator_bench import run_validator_bench

    result = asyncio.run(
        run_validator_bench(
            workers, n=n, products=products, store=store, url=url, blas_threads=blas_threads,
            profile_path=profile,
        )
    )  # fmt: skip
    _emit(result, as_json, f"validator round: {workers} workers, n={n}")


@app.command("network")
def network(
    rounds: Annotated[int, typer.Option(min=1, help="Simulated challenge rounds.")] = 45,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    as_json: JsonFlag = False,
) -> None:
    """Simulate honest and cheating miners through real verification and real scoring."""
    from byteleap.validator.simulation import run_network_simulation

    result = run_network_simulation(rounds, seed)
    _emit(result, as_json, f"network simulation, {rounds} rounds")


@app.command("gateway")
def gateway(
    workers: Annotated[int, typer.Option(min=1, help="Simulated CPU workers.")] = 1000,
    jobs: Annotated[int, typer.Option(min=1, help="Jobs to submit.")] = 1000,
    rate: Annotated[float, typer.Option(min=0.1, help="Submissions per second.")] = 25.0,
    store: Annotated[
        str, typer.Option(help="sqlite, or postgres (a scratch database on 127.0.0.1:5432).")
    ] = "sqlite",
    replicas: Annotated[
        int, typer.Option(min=1, max=8, help="Gateways sharing the store (needs postgres).")
    ] = 1,
    ramp: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated submission rates (per second), tried in order until p99 "
            "submit→running passes 1 s; reports the ceiling. Replaces --jobs/--rate."
        ),
    ] = None,
    seconds: Annotated[float, typer.Option(min=1, help="Seconds per ramp step.")] = 20.0,
    as_json: JsonFlag = False,
) -> None:
    """Submit → running latency and jobs per minute through the real gateway and executor."""
    import asyncio

    from byteleap.devnet.gateway_bench import run_gateway_bench, run_gateway_ramp

    if store not in ("sqlite", "postgres"):
        raise typer.BadParameter(f"--store is sqlite or postgres, not {store!r}")
    if replicas > 1 and store != "postgres":
        raise typer.BadParameter("--replicas above 1 needs --store postgres")
    if ramp is not None:
        try:
            rates = [float(r) for r in ramp.split(",") if r.strip()]
        except ValueError:
            raise typer.BadParameter(f"--ramp takes numbers: {ramp!r}") from None
        result = asyncio.run(
            run_gateway_ramp(workers, rates, seconds, store=store, replicas=replicas)
        )
        _emit(result, as_json, f"gateway ramp on {workers} simulated workers ({store})")
        return
    result = asyncio.run(run_gateway_bench(workers, jobs, rate, store=store, replicas=replicas))
    _emit(result, as_json, f"gateway: {jobs} jobs on {workers} simulated workers ({store})")


@app.command("startup")
def startup(
    repeats: Annotated[int, typer.Option(min=1, help="Fresh interpreters per command.")] = 5,
    as_json: JsonFlag = False,
) -> None:
    """How fast the CLI starts: each customer command's --help against validator --help."""
    from byteleap.devnet.startup_bench import run_startup_bench

    result = run_startup_bench(repeats)
    if as_json:
        typer.echo(json.dumps(result))
        return
    table = Table(title=f"CLI startup, median of {repeats} fresh interpreters")
    for column in ("command", "median s", "× faster than baseline", "top import", "heavy"):
        table.add_column(column)
    for row in [*result["commands"], result["baseline"]]:
        first = row["top_imports"][0] if row["top_imports"] else {"module": "", "cumulative_ms": 0}
        table.add_row(
            row["command"],
            f"{row['median_s']:.3f}",
            str(row.get("baseline_ratio", "baseline")),
            f"{first['module']} ({first['cumulative_ms']} ms)",
            ", ".join(row["heavy"]) or "-",
        )
    Console().print(table)
