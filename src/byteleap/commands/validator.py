"""`byteleap validator run | scores`."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from byteleap.commands.common import ConfigOption, settings_for
from byteleap.config import ValidatorSettings
from byteleap.logs import configure_logging
from byteleap.protocol.gpu_models import GpuReading, gpu_reading

if TYPE_CHECKING:
    from byteleap.store import Store

app = typer.Typer(no_args_is_help=True, add_completion=False)


@app.command("run")
def run(config: ConfigOption = None) -> None:
    """Run challenge rounds and set weights, resuming from the store."""
    from byteleap.validator.runner import run_validator

    settings = settings_for(ValidatorSettings, config)
    configure_logging(settings.log_level)
    asyncio.run(run_validator(settings))


async def _scores(settings: ValidatorSettings) -> dict[str, Any]:
    from byteleap.chain import open_chain
    from byteleap.keys import load_wallet
    from byteleap.store import open_store
    from byteleap.validator.service import Validator

    wallet = load_wallet(settings.wallet.name, settings.wallet.hotkey, path=settings.wallet.path)
    store = await open_store(settings.store.url)
    chain = open_chain(settings.chain)
    try:
        result = await Validator(settings, wallet, chain, store).score()
        now = result.board.now
        readings = await gpu_readings(store, since=now - settings.scoring.window_s, until=now)
    finally:
        await chain.close()
        await store.close()
    return {
        "now": result.board.now,
        "lease_active": result.board.lease_active,
        "miners": [
            {**asdict(m), "uid": result.uids.get(m.hotkey), "weight": result.weight_of(m.hotkey)}
            for m in result.board.miners
        ],
        "workers": [
            {**asdict(w), **reading_fields(readings.get((w.miner_hotkey, w.worker_id)))}
            for w in result.board.workers
        ],
    }


async def gpu_readings(
    store: Store, *, since: float, until: float
) -> dict[tuple[str, str], GpuReading]:
    """Each worker's claimed GPU model beside what its passes in ``[since, until]`` measured."""
    from byteleap.store import challenge_summaries, list_miners, list_workers

    async with store.session() as s:
        summaries = await challenge_summaries(s, since=int(since), until=int(until) + 1)
        workers = await list_workers(s)
        miners = {m.id: m.hotkey for m in await list_miners(s)}
    passes = {r.worker_id: r.throughputs for r in summaries}
    return {
        (miners[w.miner_id], w.worker_key): gpu_reading(
            [g.model for g in w.hardware.gpus], passes.get(w.id, ())
        )
        for w in workers
    }


def reading_fields(reading: GpuReading | None) -> dict[str, Any]:
    r = reading or GpuReading(None, None, None, None)
    return {
        "claimed_gpu_model": r.claimed_model,
        "measured_gpu_class": r.measured_class,
        "measured_throughput": r.measured_throughput,
        "gpu_model_mismatch": r.mismatch,
    }


def _measured(w: dict[str, Any]) -> str:
    """The measured-as cell: the class, flagged when it refutes the claim."""
    if w["claimed_gpu_model"] is None:
        return ""
    if w["measured_throughput"] is None:
        return "not measured"
    shown = w["measured_gpu_class"] or "no known GPU"
    return f"{shown} ✗" if w["gpu_model_mismatch"] else shown


@app.command("scores")
def scores(
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Miners and workers with passes/failures, throughput, availability and scores."""
    data = asyncio.run(_scores(settings_for(ValidatorSettings, config)))
    if as_json:
        typer.echo(json.dumps(data))
        return
    console = Console()
    miners = Table(title="miners")
    for column in ("hotkey", "workers", "challenge", "lease", "final", "weight"):
        miners.add_column(column)
    for m in data["miners"]:
        miners.add_row(
            m["hotkey"][:12] + "…",
            str(m["workers"]),
            f"{m['challenge']:.3f}",
            f"{m['lease']:.3f}",
            f"{m['final']:.3f}",
            f"{m['weight']:.3f}",
        )
    console.print(miners)
    workers = Table(title="workers (✗: the measurement refutes the claimed GPU)")
    columns = ("miner", "worker", "claimed GPU", "measured as", "median TFLOP/s", "pass", "fail",
               "wrong", "GFLOP/s", "avail", "score")  # fmt: skip
    for column in columns:
        workers.add_column(column)
    for w in data["workers"]:
        median = w["measured_throughput"]
        workers.add_row(
            w["miner_hotkey"][:12] + "…",
            w["worker_id"],
            w["claimed_gpu_model"] or "",
            _measured(w),
            "" if median is None else f"{median / 1e12:.1f}",
            str(w["successes"]),
            str(w["failures"]),
            str(w["wrong_answers"]),
            f"{w['performance'] / 1e9:.2f}",
            f"{w['availability']:.2f}",
            f"{w['score'] / 1e9:.3f}",
        )
    console.print(workers)
