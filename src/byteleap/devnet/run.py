"""The devnet's main job as a list of named, timed steps, shown live."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live

from byteleap.devnet.checkpoint import step_checkpoint
from byteleap.devnet.customer import step_gateway, step_job, step_lease
from byteleap.devnet.inference import step_inference
from byteleap.devnet.network import (
    score_now,
    step_chain,
    step_keys,
    step_metagraph,
    step_miners,
    step_register,
    step_validator,
    step_weights,
    step_workers,
)
from byteleap.devnet.services import step_service
from byteleap.devnet.state import DevnetOptions, DevnetState, Step
from byteleap.devnet.summary import DevnetSummary, StepResult
from byteleap.devnet.supervisor import Supervisor
from byteleap.devnet.validation import step_validation
from byteleap.devnet.view import LiveView, live_view
from byteleap.errors import ByteleapError
from byteleap.validator.scores import ScoreResult

__all__ = ["STEPS", "DevnetOptions", "run_devnet", "summary_json"]

log = logging.getLogger(__name__)

STEPS: list[tuple[str, Step]] = [
    ("keys", step_keys),
    ("chain", step_chain),
    ("register", step_register),
    ("miners", step_miners),
    ("workers", step_workers),
    ("validator", step_validator),
    ("gateway", step_gateway),
    ("job", step_job),
    ("lease", step_lease),
    ("validation", step_validation),
    ("service", step_service),
    ("inference", step_inference),
    ("checkpoint", step_checkpoint),
    ("weights", step_weights),
    ("metagraph", step_metagraph),
]


async def _run_steps(state: DevnetState, live: Live) -> None:
    view = state.view
    assert view is not None
    for name, step in STEPS:
        started = time.monotonic()
        view.step, view.detail = name, ""
        live.refresh()
        try:
            await step(state)
            error: str | None = None
        except Exception as exc:  # any failure ends the run with a red step
            log.exception("devnet step failed", extra={"step": name})
            error = f"{type(exc).__name__}: {exc}"
        seconds = round(time.monotonic() - started, 3)
        state.summary.steps.append(
            StepResult(name=name, ok=error is None, seconds=seconds, error=error)
        )
        mark = "[green]✓[/]" if error is None else "[red]✗[/]"
        live.console.print(f"{mark} {name} ({seconds:.2f}s)" + (f": {error}" if error else ""))
        if error is not None:
            state.summary.ok = False
            return


def _fresh_home(home: Path) -> None:
    # Fresh keys and a fresh chain every run; the folder is ours alone.
    if home.exists():
        shutil.rmtree(home)
    home.mkdir(parents=True)


def _view_for(state: DevnetState) -> LiveView:
    def name_of(hotkey: str) -> str:
        for name, wallet in state.wallets.items():
            if wallet.hotkey.ss58_address == hotkey:
                return name
        return hotkey[:10]

    return LiveView(name_of)


async def _live_scores(state: DevnetState) -> ScoreResult | None:
    if not state.store_url or state.chain is None:
        return None
    view = state.view
    if view is not None and not view.cheats:
        view.cheats = {state.wallets[n].hotkey.ss58_address: c for n, c in state.cheats.items()}
    try:
        return await score_now(state)
    except ByteleapError:
        return None


async def run_devnet(options: DevnetOptions, console: Console) -> DevnetSummary:
    """Run the devnet's steps; children are stopped on return (or Ctrl-C) unless keep_running."""
    _fresh_home(options.home)
    supervisor = Supervisor(options.home / "logs")
    state = DevnetState(options=options, supervisor=supervisor, console=console)
    state.view = _view_for(state)
    try:
        with Live(
            get_renderable=state.view.render,
            console=console,
            refresh_per_second=4,
            transient=True,
        ) as live:
            async with live_view(state.view, live, lambda: _live_scores(state)):
                await _run_steps(state, live)
                if options.keep_running and state.summary.ok:
                    state.view.step, state.view.detail = "running", "Ctrl-C stops it"
                    # The customer's key is a throwaway of this local network: printing it is
                    # what lets a reader point the CLI or SDK at the devnet.
                    live.console.print(
                        f"devnet is running: gateway {state.gateway_url} "
                        f"(dashboard {state.gateway_url}/dashboard), chain {state.chain_url}, "
                        f"customer API key {state.api_key}; Ctrl-C stops it",
                        soft_wrap=True,
                    )
                    live.console.print(
                        f"  try: export BYTELEAP_GATEWAY_URL={state.gateway_url} "
                        f"BYTELEAP_API_KEY={state.api_key}; byteleap jobs list",
                        soft_wrap=True,
                    )
                    await _wait_for_interrupt()
        if state.scores is not None and state.view is not None:
            console.print(state.view.table(state.scores))
    finally:
        if state.chain is not None:
            with contextlib.suppress(Exception):
                await state.chain.close()
        supervisor.stop_all()
    return state.summary


async def _wait_for_interrupt() -> None:
    """Ctrl-C (or SIGTERM) after a green run ends it normally: summary printed, exit 0."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def summary_json(summary: DevnetSummary) -> dict[str, Any]:
    return summary.model_dump(mode="json", exclude={"neurons"})
