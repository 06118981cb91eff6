"""The devnet's output-validation step: deterministic jobs re-executed on other miners.

Without output cheaters one job is enough to show a ``match``. With ``wrong-output`` cheaters
(``--cheaters 7`` and up) there are two jobs for every worker that can be offered, so the
cheater's worker runs at least one: its result disagrees with the other miners' re-runs, the
majority decides, and its miner loses its lease score for the window.
"""

from __future__ import annotations

import asyncio
import sys
import time

from byteleap.devnet.state import DevnetError, DevnetState, check_children, miner_names, workers_of
from byteleap.devnet.summary import JobSummary
from byteleap.sdk import AsyncClient

OUTPUT_CHEAT = "wrong-output"
SETTLED = ("match", "mismatch")
# Cheats whose workers pass challenges, so the gateway may offer them customer work (not
# shared-hotkeys: the gateway drops duplicated workers; not wash-lease: refused at enrollment).
OFFERED_CHEATS = frozenset({OUTPUT_CHEAT, "multiplex"})


async def step_validation(state: DevnetState) -> None:
    """Submit deterministic jobs asking for validation and wait for every verdict."""
    output_cheaters = sum(1 for cheat in state.cheats.values() if cheat == OUTPUT_CHEAT)
    offered = sum(
        workers_of(state, name)
        for name in miner_names(state)
        if name not in state.cheats or state.cheats[name] in OFFERED_CHEATS
    )
    count = 2 * offered if output_cheaters else 1
    code = "import hashlib; print(hashlib.sha256(b'byteleap' * 100000).hexdigest())"
    spec = {
        "command": [sys.executable, "-c", code],
        "timeout_s": 60,
        "retries": 1,
        "deterministic": True,
        "validate_output": True,
    }
    async with AsyncClient(state.gateway_url, state.api_key) as client:
        jobs = [await client.submit(spec) for _ in range(count)]
        deadline = time.monotonic() + 120
        while True:
            views = [await client.get(job.id) for job in jobs]
            settled = [v for v in views if v.validated in SETTLED]
            failed = [v for v in views if v.state.is_terminal and v.state.value != "succeeded"]
            if failed:
                raise DevnetError(f"validation job {failed[0].id} ended {failed[0].state.value}")
            if len(settled) == len(views):
                break
            check_children(state)
            if time.monotonic() > deadline:
                raise DevnetError(f"{len(settled)} of {len(views)} jobs validated in time")
            state.progress(f"{len(settled)}/{len(views)} jobs validated")
            await asyncio.sleep(0.5)
    state.summary.jobs.extend(JobSummary.of(view) for view in views)
    mismatches = sum(1 for v in views if v.validated == "mismatch")
    if output_cheaters and not mismatches:
        raise DevnetError("no job landed on an output cheater's worker")
    if not output_cheaters and mismatches:
        raise DevnetError(f"{mismatches} honest jobs did not match their re-runs")
    # Weights from now on include the penalty (or its absence).
    state.weights_after = int(time.time()) + 1
