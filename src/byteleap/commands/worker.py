"""`byteleap worker --miner URL --token T`: run one worker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from byteleap.commands.common import ConfigOption
from byteleap.config import WorkerSettings, load_settings
from byteleap.logs import configure_logging

app = typer.Typer(add_completion=False, invoke_without_command=True)


@app.callback()
def worker(
    config: ConfigOption = None,
    miner: Annotated[str | None, typer.Option(help="The miner's wss:// worker URL.")] = None,
    token: Annotated[str | None, typer.Option(help="One-time enrollment token.")] = None,
    home: Annotated[Path | None, typer.Option(help="Where the worker keeps its key.")] = None,
    behaviour: Annotated[str | None, typer.Option(help="honest | hang (tests).")] = None,
) -> None:
    """Run a worker: enroll (or reconnect), heartbeat, solve challenges."""
    from byteleap.worker.node import Behaviour, Refusal, WorkerNode

    overrides: dict[str, Any] = {
        k: v
        for k, v in {
            "miner_url": miner,
            "token": token,
            "home": home,
            "behaviour": behaviour,
        }.items()
        if v is not None
    }
    settings = load_settings(WorkerSettings, config, **overrides)
    configure_logging(settings.log_level)
    if settings.metrics_port is not None:
        from byteleap.metrics import serve_metrics

        serve_metrics(settings.metrics_port)
    node = WorkerNode(
        miner_url=settings.miner_url,
        home=settings.home,
        token=settings.token,
        behaviour=Behaviour(settings.behaviour),
        backend=settings.backend,
        network_host=settings.network_host,
        executor=settings.executor,
        vm=settings.vm,
    )
    try:
        asyncio.run(node.run_forever())
    except Refusal as exc:
        typer.echo(f"worker refused by miner: {exc}", err=True)
        raise typer.Exit(1) from None
