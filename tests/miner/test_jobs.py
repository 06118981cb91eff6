"""Jobs through the miner to a worker's executor, as real processes: logs, cancel, loss."""

from __future__ import annotations

import asyncio
import secrets
import signal
import sys
import time
from typing import Any

import pytest

from byteleap.net.messages import JobRequest, JobStatus, RunState, WorkerState
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.protocol.execution import ExecutionSpec
from network_fixtures import miner_neuron, wait_for_workers

pytestmark = pytest.mark.slow


def job(worker_id: str, command: list[str], **spec: Any) -> JobRequest:
    return JobRequest(
        job_id="job-" + secrets.token_hex(8),
        attempt=1,
        worker_id=worker_id,
        spec=ExecutionSpec(command=command, timeout_s=spec.pop("timeout_s", 60), **spec),
    )


async def until_done(client: MinerClient, job_id: str, timeout_s: float = 60) -> JobStatus:
    deadline = time.monotonic() + timeout_s
    while True:
        status = await client.job_status(job_id)
        if status.state.is_terminal:
            return status
        assert time.monotonic() < deadline, status
        await asyncio.sleep(0.1)


async def test_a_job_runs_streams_its_logs_and_frees_the_worker(
    network: Any, workers: dict[str, str]
) -> None:
    script = "import sys\nfor i in range(50): print('line', i, flush=True)\nsys.exit(3)"
    request = job(workers["w1"], [sys.executable, "-c", script])
    async with MinerClient(network.validator, await miner_neuron(network)) as client:
        started = await client.submit_job(request)
        assert started.state is RunState.RUNNING
        again = await client.submit_job(request)  # a retried request starts nothing new
        assert again.job_id == request.job_id
        status = await until_done(client, request.job_id)
        assert status.state is RunState.FAILED and status.result is not None
        assert status.result.exit_code == 3 and "line 49" in status.result.stdout_tail
        lines, after = [], 0
        while True:
            page = await client.job_logs(request.job_id, after=after)
            lines += page.lines
            after = lines[-1].seq + 1 if lines else 0
            if page.done:
                break
        assert [line.line for line in lines] == [f"line {i}" for i in range(50)]
        assert [line.seq for line in lines] == list(range(50))
        await wait_for_workers(client, 3)  # back to idle


async def test_logs_long_poll_and_cancel_really_stops(
    network: Any, workers: dict[str, str]
) -> None:
    script = "import time\nprint('started', flush=True)\ntime.sleep(300)"
    request = job(workers["w2"], [sys.executable, "-c", script])
    async with MinerClient(network.validator, await miner_neuron(network)) as client:
        await client.submit_job(request)
        page = await client.job_logs(request.job_id, after=0, wait_s=20)
        assert [line.line for line in page.lines] == ["started"] and not page.done
        listed = {w.worker_id: w.state for w in (await client.workers()).workers}
        assert listed[workers["w2"]] is WorkerState.BUSY
        await client.cancel_job(request.job_id)
        status = await until_done(client, request.job_id, timeout_s=30)
        assert status.state is RunState.CANCELLED
        await wait_for_workers(client, 3)


@pytest.mark.adversarial
async def test_bad_job_requests(network: Any, workers: dict[str, str]) -> None:
    async with MinerClient(network.validator, await miner_neuron(network)) as client:
        with pytest.raises(MinerCallError) as info:
            await client.submit_job(job("w-ffffffffffffffff", ["true"]))
        assert (info.value.status, info.value.reason) == (404, "unknown_worker")
        with pytest.raises(MinerCallError) as info:
            await client.job_status("job-doesnotexist")
        assert (info.value.status, info.value.reason) == (404, "unknown_job")
        busy = job(workers["w1"], [sys.executable, "-c", "import time; time.sleep(300)"])
        await client.submit_job(busy)
        with pytest.raises(MinerCallError) as info:
            await client.submit_job(job(workers["w1"], ["true"]))
        assert info.value.status == 409
        await client.cancel_job(busy.job_id)
        await until_done(client, busy.job_id)
        refused = job(workers["w1"], ["/no/such/program"])
        await client.submit_job(refused)
        status = await until_done(client, refused.job_id)
        assert status.state in {RunState.REFUSED, RunState.FAILED}
        await wait_for_workers(client, 3)


async def test_kill_9_mid_job_marks_it_lost(network: Any, workers: dict[str, str]) -> None:
    request = job(workers["w3"], [sys.executable, "-c", "import time; time.sleep(300)"])
    async with MinerClient(network.validator, await miner_neuron(network)) as client:
        await client.submit_job(request)
        await asyncio.sleep(0.5)
        network.stop("w3", signal.SIGKILL)
        status = await until_done(client, request.job_id, timeout_s=30)
        assert status.state is RunState.LOST and "worker lost" in status.detail
