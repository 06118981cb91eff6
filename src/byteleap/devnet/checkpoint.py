"""The devnet's checkpoint step: training that survives a lost worker.

A customer's job trains (a stand-in loop: no torch, so it starts at once) and saves its
state atomically into its ``checkpoint`` dir every few steps. Once the gateway holds a
checkpoint, the devnet kills the job's worker with SIGKILL, as a crash would. The gateway
sees the worker lost and runs the job again on another worker, with the last checkpoint in
place: the job prints the step it resumed from, and succeeds. The killed worker is then
started again (it reconnects with its enrolled key) so the rest of the run has it.

With cheaters on the network the step is skipped: a cheater's worker may lie about a job's
result, which is the validation step's business, not this one's.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
from pathlib import Path

from byteleap.config import GatewaySettings, load_settings
from byteleap.devnet.cheaters import worker_home
from byteleap.devnet.network import wait_for_workers
from byteleap.devnet.state import DevnetError, DevnetState, check_children, miner_names, workers_of
from byteleap.devnet.summary import CheckpointSummary
from byteleap.devnet.supervisor import Child
from byteleap.gateway.checkpoint_keeper import CheckpointKeeper
from byteleap.protocol.api import JobState
from byteleap.sdk import AsyncClient

STEPS = 80  # of 0.1 s: 8 s of work
KEEP_EVERY = 5
KILL_AT_STEP = 20  # the worker dies once the gateway holds a checkpoint this far

TRAIN = f"""
import json, os, time
path = os.path.join("ckpt", "state.json")
step = json.load(open(path))["step"] if os.path.exists(path) else 0
print("resumed from step", step, flush=True)
os.makedirs("ckpt", exist_ok=True)
while step < {STEPS}:
    time.sleep(0.1)
    step += 1
    if step % {KEEP_EVERY} == 0:  # written whole, then renamed: never half a checkpoint
        with open("ckpt/.state.tmp", "w") as out:
            json.dump({{"step": step}}, out)
        os.replace("ckpt/.state.tmp", path)
print("done at step", step, flush=True)
"""


async def step_checkpoint(state: DevnetState) -> None:
    """A job with a checkpoint dir loses its worker mid-run and resumes elsewhere."""
    if state.cheats:
        state.summary.checkpoint = CheckpointSummary(skipped="cheaters on the network")
        return
    spec = {
        "command": [sys.executable, "-c", TRAIN],
        "checkpoint": "ckpt",
        "timeout_s": 120,
        "retries": 2,
    }
    async with AsyncClient(state.gateway_url, state.api_key, timeout=30) as client:
        job = await client.submit(spec)
        kept = await _checkpoint_kept(state, client, job.id)
        placed = await client.get(job.id)
        if placed.worker_id is None:
            raise DevnetError(f"job {job.id} has a checkpoint but no worker")
        killed = _worker_process(state, placed.worker_id)
        state.progress(f"checkpoint: step {kept} kept; killing {killed}")
        state.supervisor.kill(killed.name)
        done = await client.wait(job.id, timeout_s=120, poll_s=0.5)
    # The killed worker comes back with its enrolled key (its token is not needed again).
    state.supervisor.start(killed.name, *killed.args)
    await wait_for_workers(state)
    resumed = re.search(r"resumed from step (\d+)", done.stdout_tail or "")
    state.summary.checkpoint = CheckpointSummary(
        job=job.id,
        state=done.state.value,
        attempts=done.attempts,
        kept_step=kept,
        resumed_from=int(resumed.group(1)) if resumed else None,
        killed_worker=placed.worker_id,
        finished_on=done.worker_id,
    )
    if done.state is not JobState.SUCCEEDED or resumed is None or int(resumed.group(1)) == 0:
        raise DevnetError(f"the job did not resume from its checkpoint: {done.state}, {done}")


async def _checkpoint_kept(
    state: DevnetState, client: AsyncClient, job_id: str, timeout_s: float = 60
) -> int:
    """The step of the checkpoint a gateway holds for the job once it is ``KILL_AT_STEP``
    or later (read where the gateway keeps it: any replica may be the one that does)."""
    keepers = [CheckpointKeeper(_checkpoints_dir(config)) for config in state.gateway_configs]
    deadline = time.monotonic() + timeout_s
    while True:
        for keeper in keepers:
            kept = await keeper.latest(job_id)
            files = {f.path: f.data for f in kept.files} if kept is not None else {}
            if "state.json" in files:
                step = int(json.loads(files["state.json"])["step"])
                if step >= KILL_AT_STEP:
                    return step
        check_children(state)
        view = await client.get(job_id)
        if view.state.is_terminal:
            raise DevnetError(f"job {job_id} ended before a checkpoint was kept: {view}")
        if time.monotonic() > deadline:
            raise DevnetError(f"no checkpoint at step {KILL_AT_STEP} of job {job_id} kept")
        await asyncio.sleep(0.2)


def _checkpoints_dir(config: Path) -> Path:
    return load_settings(GatewaySettings, config).artifacts_path / ".checkpoints"


def _worker_process(state: DevnetState, worker_id: str) -> Child:
    for name in miner_names(state):
        for index in range(1, workers_of(state, name) + 1):
            identity = worker_home(state, name, index) / "worker_identity.json"
            if json.loads(identity.read_text())["worker_id"] == worker_id:
                child = f"{name}-worker{index}"
                return next(c for c in state.supervisor.children if c.name == child)
    raise DevnetError(f"no devnet worker is {worker_id}")
