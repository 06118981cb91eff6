"""Jobs that print a lot, against a real network (chain, miner and workers as processes): they
end in the gateway within seconds of ending on their worker, the miner's memory stays bounded
while their output flows, and the whole log can be read back page by page (issue 17,
finding 4: a job with 1 MiB of output stayed ``running`` and a cancel billed 44 s)."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import psutil
import pytest

from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.errors import Conflict
from byteleap.net.messages import JobStatus
from byteleap.protocol.api import JobSpec, JobState, JobView
from byteleap.store import Store
from gateway.gateway_harness import dispatching, miner_pool, network_settings

pytestmark = pytest.mark.slow

LINE = 100  # bytes a line, newline included
END_LINE = "the end"


@pytest.fixture
async def gateway(
    network: Any, workers: dict[str, str], sqlite_store: Store
) -> AsyncIterator[GatewayService]:
    settings = network_settings(network, dispatch_interval_s=0.1)
    async with miner_pool(network, settings) as pool:
        async with dispatching(GatewayService(sqlite_store, pool, settings)) as service:
            yield service


def printing(megabytes: int, then: str = "") -> JobSpec:
    """A job that prints ``megabytes`` MB of 100-byte lines as fast as it can, then END_LINE."""
    lines = megabytes * 1_000_000 // LINE
    code = (
        "import sys\n"
        f"line = b'x' * {LINE - 1} + b'\\n'\n"
        f"for _ in range({lines // 10_000}):\n"
        "    sys.stdout.buffer.write(line * 10_000)\n"
        f"sys.stdout.buffer.write(line * {lines % 10_000})\n"
        f"print({END_LINE!r}, flush=True)\n"
        f"{then}\n"
    )
    return JobSpec(command=[sys.executable, "-c", code], timeout_s=120)


async def until(service: GatewayService, tenant: Any, job_id: str, timeout_s: float) -> JobView:
    deadline = time.monotonic() + timeout_s
    while True:
        view = await service.get_job(tenant, job_id)
        if view.state.is_terminal:
            return view
        assert time.monotonic() < deadline, f"not finished after {timeout_s} s: {view}"
        await asyncio.sleep(0.05)


async def miner_status(service: GatewayService, view: JobView) -> JobStatus:
    assert view.miner_hotkey is not None
    client = await service.pool.client(view.miner_hotkey)
    return await client.job_status(f"{view.id}-a{view.attempts}")


class PeakRss:
    """The most resident memory a process reached, sampled every 20 ms."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.start = self.peak = self.process.memory_info().rss
        self._task = asyncio.create_task(self._sample())

    async def _sample(self) -> None:
        while True:
            self.peak = max(self.peak, self.process.memory_info().rss)
            await asyncio.sleep(0.02)

    async def stop(self) -> int:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        return self.peak - self.start


async def test_a_200_mb_job_ends_in_the_gateway_within_5_s_and_its_log_reads_whole(
    gateway: GatewayService, network: Any, workers: dict[str, str]
) -> None:
    tenant = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "big", balance=100.0)
    )
    rss = PeakRss(network.processes["miner"].pid)
    worker_rss = {name: PeakRss(network.processes[name].pid) for name in workers}
    job = await gateway.submit_job(tenant, printing(200))
    view = await until(gateway, tenant, job.id, timeout_s=120)
    status = await miner_status(gateway, view)
    assert view.state is JobState.SUCCEEDED, view
    assert status.result is not None and view.finished_at is not None
    delay = view.finished_at - status.result.finished_at.timestamp()

    # The whole log, read by line number (its last lines follow the job's end).
    lines = 200_000_000 // LINE
    tail = [e async for e in gateway.job_logs(tenant, job.id, after=lines - 2, follow=True)]
    whole = time.time() - status.result.finished_at.timestamp()
    growth = await rss.stop()
    ran_on = next(name for name, wid in workers.items() if wid == view.worker_id)
    worker_growth = {name: await peak.stop() for name, peak in worker_rss.items()}[ran_on]
    print(
        f"\n200 MB job: ended in the gateway {delay:.2f} s after it ended on the worker (ran "
        f"{(status.result.finished_at - status.result.started_at).total_seconds():.1f} s there), "
        f"its last line read {whole:.1f} s after; miner RSS {rss.start / 1e6:.0f} MB at the "
        f"start, peak +{growth / 1e6:.1f} MB; worker RSS peak +{worker_growth / 1e6:.1f} MB"
    )
    assert delay < 5.0
    assert growth < 100e6 and worker_growth < 100e6
    middle = gateway.job_logs(tenant, job.id, after=lines // 2)
    first = await anext(middle)
    await middle.aclose()  # type: ignore[attr-defined]
    assert first.seq == lines // 2 and first.line == "x" * (LINE - 1)
    done = await miner_status(gateway, view)
    assert [(e.seq, e.line) for e in tail] == [
        (lines - 2, "x" * (LINE - 1)),
        (lines - 1, "x" * (LINE - 1)),
        (lines, END_LINE),
    ], (done.detail, done.log_lines)
    assert view.stdout_tail.endswith(END_LINE + "\n")
    # On disk: whole under the miner's state dir; gone from the worker's once sent.
    spilled = (network.root / "miner-home" / "miner" / "job-logs").iterdir()
    assert any(path.stat().st_size > 200_000_000 for path in spilled)
    worker_logs = network.root / ran_on / "job-logs"
    for _ in range(50):
        if not any(worker_logs.iterdir()):
            break
        await asyncio.sleep(0.1)
    assert not any(worker_logs.iterdir())


@pytest.mark.adversarial
async def test_a_job_with_over_1_mib_of_output_finishes_and_a_cancel_bills_no_phantom_time(
    gateway: GatewayService,
) -> None:
    key = await create_tenant_with_key(gateway.store, "chatty", balance=100.0)
    tenant = await gateway.authenticate(key)
    job = await gateway.submit_job(tenant, printing(3))  # 3 MB, a fraction of a second
    view = await until(gateway, tenant, job.id, timeout_s=30)
    assert view.state is JobState.SUCCEEDED, view
    assert view.started_at is not None and view.finished_at is not None
    result = (await miner_status(gateway, view)).result
    assert result is not None
    ran = (result.finished_at - result.started_at).total_seconds()
    billed = view.finished_at - view.started_at
    assert billed < ran + 5.0, f"ran {ran:.1f} s on the worker, {billed:.1f} s in the gateway"
    # Over: a cancel is refused and bills nothing more.
    with pytest.raises(Conflict):
        await gateway.cancel_job(tenant, job.id)
    await asyncio.sleep(0.5)
    after = await gateway.get_job(tenant, job.id)
    assert after.state is JobState.SUCCEEDED and after.cost == view.cost
    assert (await gateway.authenticate(key)).balance == pytest.approx(100.0 - view.cost)
