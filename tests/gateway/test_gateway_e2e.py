"""The gateway service against a real network: chain, miner and workers as processes."""

from __future__ import annotations

import asyncio
import hashlib
import signal
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from byteleap.chain.local.client import LocalChain
from byteleap.config import GatewaySettings
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.errors import Conflict, NotFound, PaymentRequired, Unauthorized
from byteleap.gateway.miners import MinerPool
from byteleap.protocol.api import JobSpec, JobState, JobView
from byteleap.store import Store
from file_server import FileServer, serving
from gateway.gateway_harness import dispatching, miner_pool, network_settings

pytestmark = pytest.mark.slow


@pytest.fixture
async def gateway(
    network: Any, workers: dict[str, str], store: Store
) -> AsyncIterator[GatewayService]:
    settings = network_settings(network, dispatch_interval_s=0.1)
    async with miner_pool(network, settings) as pool:
        async with dispatching(GatewayService(store, pool, settings)) as service:
            yield service


async def until(service: GatewayService, tenant: Any, job_id: str, *states: JobState) -> JobView:
    deadline = time.monotonic() + 60
    while True:
        view = await service.get_job(tenant, job_id)
        if view.state in states:
            return view
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.1)


def python_job(code: str, **fields: Any) -> JobSpec:
    return JobSpec(command=[sys.executable, "-c", code], timeout_s=60, **fields)


async def test_a_job_runs_on_a_worker_and_is_billed(gateway: GatewayService) -> None:
    key = await create_tenant_with_key(gateway.store, "alice", balance=10.0)
    alice = await gateway.authenticate(key)
    submitted = await gateway.submit_job(alice, python_job("print('hello from a worker')"))
    assert submitted.state is JobState.QUEUED
    done = await until(gateway, alice, submitted.id, JobState.SUCCEEDED, JobState.FAILED)
    assert done.state is JobState.SUCCEEDED, done
    assert done.exit_code == 0 and "hello from a worker" in done.stdout_tail
    assert done.attempts == 1 and done.worker_id and done.miner_hotkey
    logs = [entry.line async for entry in gateway.job_logs(alice, submitted.id)]
    assert logs == ["hello from a worker"]
    assert (await gateway.authenticate(key)).balance <= 10.0


async def test_a_command_that_does_not_exist_is_not_retried_elsewhere(
    gateway: GatewayService,
) -> None:
    """It was started on three workers in turn: a typo fails the same everywhere."""
    typo = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "typo", balance=10.0)
    )
    job = await gateway.submit_job(
        typo, JobSpec(command=["pyhton3-no-such-program", "-c", "1"], timeout_s=60, retries=2)
    )
    done = await until(gateway, typo, job.id, JobState.FAILED, JobState.SUCCEEDED)
    assert done.state is JobState.FAILED and done.attempts == 1, done
    assert done.error is not None and "start_failed" in done.error
    assert done.cost == 0.0  # it never ran


@pytest.mark.adversarial
async def test_a_url_input_into_the_workers_network_fails_without_a_retry(
    gateway: GatewayService,
) -> None:
    """Workers fetch from public addresses only: the first refuses it as ``bad_input``, and a
    refusal that every worker would repeat is not tried on the others."""
    tenant = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "lan", balance=10.0)
    )
    with serving(FileServer(files={"a": b"secret"})) as lan:
        url_input = {"url": lan.url("/f/a"), "sha256": hashlib.sha256(b"secret").hexdigest()}
        spec = python_job("print(open('a').read())", inputs={"a": url_input}, retries=2)
        job = await gateway.submit_job(tenant, spec)
        done = await until(gateway, tenant, job.id, JobState.FAILED, JobState.SUCCEEDED)
    assert done.state is JobState.FAILED and done.attempts == 1, done
    assert done.error is not None and "bad_input" in done.error, done.error
    assert "not a public address" in done.error
    assert lan.total == 0 and done.cost == 0.0


@pytest.mark.adversarial
async def test_tenants_are_isolated_and_keys_checked(gateway: GatewayService) -> None:
    alice = await gateway.authenticate(await create_tenant_with_key(gateway.store, "a", balance=1))
    bob = await gateway.authenticate(await create_tenant_with_key(gateway.store, "b", balance=1))
    job = await gateway.submit_job(alice, python_job("print(1)"))
    with pytest.raises(NotFound):
        await gateway.get_job(bob, job.id)
    with pytest.raises(NotFound):
        await gateway.cancel_job(bob, job.id)
    with pytest.raises(Unauthorized):
        await gateway.authenticate("blk_not-a-key")
    assert [j.id for j in await gateway.list_jobs(bob)] == []


@pytest.mark.adversarial
async def test_a_balance_below_the_worst_case_is_refused(gateway: GatewayService) -> None:
    poor = await gateway.authenticate(await create_tenant_with_key(gateway.store, "p", balance=0))
    with pytest.raises(PaymentRequired):
        await gateway.submit_job(poor, python_job("print(1)"))
    assert await gateway.list_jobs(poor) == []


async def test_cancel_stops_a_running_job(gateway: GatewayService) -> None:
    t = await gateway.authenticate(await create_tenant_with_key(gateway.store, "c", balance=10))
    job = await gateway.submit_job(t, python_job("import time; time.sleep(300)"))
    await until(gateway, t, job.id, JobState.RUNNING)
    cancelled = await gateway.cancel_job(t, job.id)
    assert cancelled.state is JobState.CANCELLED
    with pytest.raises(Conflict):
        await gateway.cancel_job(t, job.id)


async def test_kill_9_mid_job_finishes_on_another_worker_once(
    gateway: GatewayService, network: Any, workers: dict[str, str]
) -> None:
    t = await gateway.authenticate(await create_tenant_with_key(gateway.store, "k", balance=10))
    code = "import time; time.sleep(2); print('finished')"
    job = await gateway.submit_job(t, python_job(code, retries=2))
    running = await until(gateway, t, job.id, JobState.RUNNING)
    name = next(n for n, wid in workers.items() if wid == running.worker_id)
    network.stop(name, signal.SIGKILL)
    done = await until(gateway, t, job.id, JobState.SUCCEEDED, JobState.FAILED)
    assert done.state is JobState.SUCCEEDED, done
    assert done.attempts == 2 and done.worker_id != running.worker_id
    assert done.stdout_tail.count("finished") == 1


async def test_a_gateway_restart_loses_no_job_and_bills_it(
    gateway: GatewayService, network: Any
) -> None:
    t = await gateway.authenticate(await create_tenant_with_key(gateway.store, "r", balance=10))
    job = await gateway.submit_job(t, python_job("import time; time.sleep(2); print('survived')"))
    await until(gateway, t, job.id, JobState.RUNNING)
    # A second gateway on the same store, with nothing in memory, takes over.
    settings = GatewaySettings(chain={"url": network.chain_url}, dispatch_interval_s=0.1)
    chain = LocalChain(network.chain_url, timeout_s=5)
    pool = MinerPool(network.validator, chain, settings)
    successor = GatewayService(gateway.store, pool, settings)
    loop = asyncio.create_task(successor.run())
    try:
        done = await until(successor, t, job.id, JobState.SUCCEEDED, JobState.FAILED)
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await pool.close()
        await chain.close()
    assert done.state is JobState.SUCCEEDED and "survived" in done.stdout_tail
    assert done.attempts == 1 and done.cost > 0
