"""`byteleap validator run | scores`."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from byteleap.commands.common import ConfigOption, settings_for
from byteleap.config import ValidatorSettings
from byteleap.logs import configure_logging

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
        "workers": [asdict(w) for w in result.board.workers],
    }


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
    workers = Table(title="workers")
    for column in ("miner", "worker", "pass", "fail", "wrong", "GFLOP/s", "avail", "score"):
        workers.add_column(column)
    for w in data["workers"]:
        workers.add_row(
            w["miner_hotkey"][:12] + "…",
            w["worker_id"],
            str(w["successes"]),
            str(w["failures"]),
            str(w["wrong_answers"]),
            f"{w['performance'] / 1e9:.2f}",
            f"{w['availability']:.2f}",
            f"{w['score'] / 1e9:.3f}",
        )
    console.print(workers)
