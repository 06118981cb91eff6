"""One worker per GPU for real: worker processes on a host whose NVML is the fake one (eight
H100s, tests/fake_nvml) enroll with a real miner, which sees exactly the GPUs each was given,
and a job on one of them is shown that GPU alone."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from byteleap.net.messages import JobRequest, JobStatus, RunState, WorkerView
from byteleap.net.miner_client import MinerClient
from byteleap.protocol.execution import ExecutionSpec
from fake_nvml import pynvml as fake_nvml
from network_fixtures import miner_neuron, wait_for_workers

pytestmark = pytest.mark.slow

FAKE_NVML_DIR = Path(fake_nvml.__file__).parent
SHOW_GPUS = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'], os.environ['CUDA_DEVICE_ORDER'])"


def start_gpu_worker(
    network: Any, monkeypatch: pytest.MonkeyPatch, name: str, *args: str, **env: str
) -> str:
    """Start worker ``name`` on the eight fake H100s; its worker id once it is enrolled."""
    with monkeypatch.context() as scoped:  # the worker process inherits this environment
        path = os.environ.get("PYTHONPATH", "")
        scoped.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_NVML_DIR), path]))
        scoped.setenv("BYTELEAP_FAKE_NVML_GPUS", "8")
        for key, value in env.items():
            scoped.setenv(key, value)
        network.start(
            name, "worker", "--miner", f"wss://127.0.0.1:{network.miner_port}/v1/worker",
            "--home", str(network.root / name), "--token", network.new_token(), *args,
        )  # fmt: skip
    return name


def worker_id(network: Any, name: str) -> str:
    identity = network.root / name / "worker_identity.json"
    return str(json.loads(identity.read_text())["worker_id"])


def gpus_of(view: WorkerView) -> list[tuple[int, str]]:
    return [(g.index, g.uuid) for g in view.hardware.gpus]


def job(worker: str, **spec: Any) -> JobRequest:
    return JobRequest(
        job_id="job-" + secrets.token_hex(8),
        attempt=1,
        worker_id=worker,
        spec=ExecutionSpec(command=[sys.executable, "-c", SHOW_GPUS], timeout_s=60, **spec),
    )


async def until_done(client: MinerClient, job_id: str) -> JobStatus:
    deadline = time.monotonic() + 60
    while not (status := await client.job_status(job_id)).state.is_terminal:
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)
    return status


async def test_each_worker_registers_and_runs_on_its_own_gpus(
    network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_gpu_worker(network, monkeypatch, "gpu3", "--gpu", "3")
    start_gpu_worker(
        network, monkeypatch, "gpu1and5", CUDA_VISIBLE_DEVICES=f"{fake_nvml.uuid(1)},5"
    )
    async with MinerClient(network.validator, await miner_neuron(network)) as client:
        ready = await wait_for_workers(client, 2)
        views = {w.worker_id: w for w in ready}
        one, two = worker_id(network, "gpu3"), worker_id(network, "gpu1and5")

        assert gpus_of(views[one]) == [(3, fake_nvml.uuid(3))]
        assert gpus_of(views[two]) == [(1, fake_nvml.uuid(1)), (5, fake_nvml.uuid(5))]

        # The gateway's device index 0 on the GPU-3 worker is the host's GPU 3.
        request = job(one, gpus=[0])
        await client.submit_job(request)
        status = await until_done(client, request.job_id)
        assert status.state is RunState.SUCCEEDED, status
        assert status.result is not None and status.result.stdout_tail == "3 PCI_BUS_ID\n"

        # Device 1 on the second worker is GPU 5; a CPU job there sees no GPU at all.
        request = job(two, gpus=[1])
        await client.submit_job(request)
        status = await until_done(client, request.job_id)
        assert status.result is not None and status.result.stdout_tail == "5 PCI_BUS_ID\n"
        request = job(two)
        await client.submit_job(request)
        status = await until_done(client, request.job_id)
        assert status.result is not None and status.result.stdout_tail == " PCI_BUS_ID\n"

        # A device the worker does not serve is refused, saying how many it has.
        request = job(one, gpus=[1])
        await client.submit_job(request)
        status = await until_done(client, request.job_id)
        assert status.state is RunState.REFUSED, status
        assert status.detail.startswith("bad_spec: this worker has no GPU [1]: it serves 1")
