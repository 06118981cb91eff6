"""Checkpoint and resume through a real network: a torch training loop whose worker is
killed (SIGKILL) mid-run resumes on another worker from the checkpoint the gateway kept,
and the job costs less than half again the work of a run that was never interrupted."""

from __future__ import annotations

import asyncio
import io
import re
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.protocol.api import JobSpec, JobState, JobView, Resources
from byteleap.store import Store
from byteleap.store.cloud import get_job
from gateway.gateway_harness import dispatching, miner_pool, network_settings

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.slow

STEPS = 150
STEP_S = 0.1
# Fits y = 3x - 1 for STEPS steps (STEP_S each), checkpointing every 5 steps atomically (a
# temporary name, then a rename) and resuming from the checkpoint when there is one.
TRAIN = f"""
import os, sys, time, torch
torch.manual_seed(0)
model = torch.nn.Linear(1, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
step = 0
if os.path.exists('ckpt/state.pt'):
    state = torch.load('ckpt/state.pt')
    model.load_state_dict(state['model'])
    opt.load_state_dict(state['optimizer'])
    step = state['step']
print(f'starting at step {{step}}', flush=True)
x = torch.linspace(-1, 1, 64).unsqueeze(1)
y = 3 * x - 1
os.makedirs('ckpt', exist_ok=True)
while step < {STEPS}:
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    step += 1
    time.sleep({STEP_S})
    if step % 5 == 0:
        state = {{'step': step, 'model': model.state_dict(), 'optimizer': opt.state_dict()}}
        torch.save(state, 'ckpt/.state.pt.tmp')
        os.replace('ckpt/.state.pt.tmp', 'ckpt/state.pt')
print(f'done at step {{step}} loss {{loss.item():.4f}}', flush=True)
"""


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


@pytest.fixture
async def gateway(
    network: Any, workers: dict[str, str], store: Store, tmp_path: Path
) -> AsyncIterator[GatewayService]:
    settings = network_settings(network, dispatch_interval_s=0.1, artifacts_dir=tmp_path / "v")
    async with miner_pool(network, settings) as pool:
        async with dispatching(GatewayService(store, pool, settings)) as service:
            yield service


async def until(service: GatewayService, tenant: Any, job_id: str, done: Any) -> JobView:
    deadline = time.monotonic() + 120
    while not done(view := await service.get_job(tenant, job_id)):
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.1)
    return view


async def billed_seconds(service: GatewayService, job_id: str) -> float:
    async with service.store.session() as s:
        record = await get_job(s, job_id)
    assert record.price_per_s > 0
    return record.cost / record.price_per_s


async def kept_step(service: GatewayService, job_id: str) -> int:
    """The training step of the checkpoint the gateway holds for the job (0: none)."""
    keeper = service.dispatcher.checkpoints
    assert keeper is not None
    kept = await keeper.latest(job_id)
    if kept is None:
        return 0
    (state,) = [f for f in kept.files if f.path == "state.pt"]
    return int(torch.load(io.BytesIO(state.data))["step"])


async def test_a_killed_training_job_resumes_from_its_checkpoint_on_another_worker(
    gateway: GatewayService, network: Any, workers: dict[str, str]
) -> None:
    tenant = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "trainer", balance=50.0)
    )
    spec = JobSpec(
        command=[sys.executable, "-c", TRAIN],
        checkpoint="ckpt",
        timeout_s=300,
        resources=Resources(ram_mib=1024),  # torch alone takes over the default 256 MiB
    )

    whole = await gateway.submit_job(tenant, spec)
    ended = await until(gateway, tenant, whole.id, lambda v: v.state.is_terminal)
    assert ended.state is JobState.SUCCEEDED, ended
    assert (
        "starting at step 0" in ended.stdout_tail and f"done at step {STEPS}" in ended.stdout_tail
    )
    work_s = await billed_seconds(gateway, whole.id)

    job = await gateway.submit_job(tenant, spec)
    running = await until(gateway, tenant, job.id, lambda v: v.state is JobState.RUNNING)
    deadline = time.monotonic() + 60
    while (step := await kept_step(gateway, job.id)) < 50:
        assert time.monotonic() < deadline, "no checkpoint reached the gateway"
        await asyncio.sleep(0.1)
    first_worker = running.worker_id
    name = next(n for n, wid in workers.items() if wid == first_worker)
    killed_at = time.time()
    network.stop(name, signal.SIGKILL)
    assert running.started_at is not None
    first_attempt_s = killed_at - running.started_at

    ended = await until(gateway, tenant, job.id, lambda v: v.state.is_terminal)
    assert ended.state is JobState.SUCCEEDED, ended
    assert ended.attempts == 2 and ended.worker_id != first_worker
    resumed = re.search(r"starting at step (\d+)", ended.stdout_tail)
    assert resumed is not None, ended.stdout_tail
    assert int(resumed.group(1)) >= step > 0, (resumed.group(1), step)
    assert f"done at step {STEPS}" in ended.stdout_tail
    billed_s = await billed_seconds(gateway, job.id)
    # Each attempt is billed its own run: the lost one is not billed at all (today's rule for
    # an attempt whose worker vanished), so the job's bill is its second attempt's run.
    print(
        f"\nuninterrupted {work_s:.2f}s; killed after {first_attempt_s:.2f}s at checkpoint "
        f"step {step}; resumed from step {resumed.group(1)}; billed {billed_s:.2f}s"
    )
    assert billed_s < 1.5 * work_s
    # Even were the lost attempt billed up to its worker's death, the whole stays under it.
    assert first_attempt_s + billed_s < 1.5 * work_s
    keeper = gateway.dispatcher.checkpoints
    assert keeper is not None and await keeper.latest(job.id) is None  # dropped at its end
