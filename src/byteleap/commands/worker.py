"""`byteleap worker --miner URL --token T [--gpu N]`: run one worker (one per GPU on a
multi-GPU host: `--gpu 0`, `--gpu 1`, … each with its own `--home`)."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from byteleap.commands.common import ConfigOption
from byteleap.config import WorkerSettings, load_settings, parse_gpu_indices
from byteleap.logs import configure_logging

if TYPE_CHECKING:
    from byteleap.worker.gpu_choice import GpuChoice

app = typer.Typer(add_completion=False, invoke_without_command=True)
log = logging.getLogger(__name__)


def _gpu_indices(values: list[str] | None) -> list[int] | None:
    if not values:
        return None
    try:
        return parse_gpu_indices(values)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--gpu") from None


def choose_worker_gpus(settings: WorkerSettings) -> GpuChoice:
    """The GPUs this worker serves (a `ConfigError` naming the host's when one is not
    there), made the only ones this process and its CUDA context see."""
    from byteleap.worker.gpu_choice import GpuChoice, choose_gpus
    from byteleap.worker.hardware_probe import probe_gpus

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if settings.gpus is None and visible is None:
        return GpuChoice()  # every GPU: nothing to look up
    choice = choose_gpus(probe_gpus(), indices=settings.gpus, visible_devices=visible)
    choice.apply(os.environ)
    if choice.uuids is not None:
        log.info("serving GPUs", extra={"gpus": ",".join(choice.uuids) or "none"})
    return choice


@app.callback()
def worker(
    config: ConfigOption = None,
    miner: Annotated[str | None, typer.Option(help="The miner's wss:// worker URL.")] = None,
    token: Annotated[str | None, typer.Option(help="One-time enrollment token.")] = None,
    home: Annotated[Path | None, typer.Option(help="Where the worker keeps its key.")] = None,
    behaviour: Annotated[
        str | None, typer.Option(help="honest, or a cheat for tests and `devnet --cheaters`.")
    ] = None,
    device_lock: Annotated[
        Path | None, typer.Option(help="The lock file multiplexing workers share (tests).")
    ] = None,
    device_pace: Annotated[
        float | None,
        typer.Option(help="Seconds a challenge takes at least, as on a card (devnet)."),
    ] = None,
    gpu: Annotated[
        list[str] | None,
        typer.Option(
            "--gpu",
            help="Serve only this GPU (nvidia-smi index; repeat or 0,1 for more). Default: "
            "those CUDA_VISIBLE_DEVICES names, else every GPU.",
            show_default=False,
        ),
    ] = None,
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
            "device_lock": device_lock,
            "device_pace_s": device_pace,
            "gpus": _gpu_indices(gpu),
        }.items()
        if v is not None
    }
    settings = load_settings(WorkerSettings, config, **overrides)
    configure_logging(settings.log_level)
    gpus = choose_worker_gpus(settings)
    if settings.metrics_port is not None:
        from byteleap.metrics import serve_metrics

        serve_metrics(settings.metrics_port)
    node = WorkerNode(
        miner_url=settings.miner_url,
        home=settings.home,
        token=settings.token,
        behaviour=Behaviour(settings.behaviour),
        device_lock=settings.device_lock,
        device_pace_s=settings.device_pace_s,
        backend=settings.backend,
        network_host=settings.network_host,
        executor=settings.executor,
        vm=settings.vm,
        job_logs=settings.job_logs,
        inputs=settings.inputs,
        gpus=gpus,
    )
    try:
        asyncio.run(node.run_forever())
    except Refusal as exc:
        typer.echo(f"worker refused by miner: {exc}", err=True)
        raise typer.Exit(1) from None
