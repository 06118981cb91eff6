"""A tenant's ``max_workers`` against a real network (chain, miner and workers as processes):
a tenant holding its one worker keeps its next job queued while another tenant's job runs, and
that job runs once the worker is free again."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.protocol.api import JobSpec, JobState
from byteleap.store import Store
from gateway.gateway_harness import dispatching, miner_pool, network_settings, until

pytestmark = pytest.mark.slow


@pytest.fixture
async def gateway(
    network: Any, workers: dict[str, str], store: Store
) -> AsyncIterator[GatewayService]:
    settings = network_settings(network, dispatch_interval_s=0.1, unplaceable_timeout_s=0.5)
    async with miner_pool(network, settings) as pool:
        async with dispatching(GatewayService(store, pool, settings)) as service:
            yield service


def _job(code: str) -> JobSpec:
    return JobSpec(command=[sys.executable, "-c", code], timeout_s=60)


@pytest.mark.adversarial
async def test_a_tenant_at_its_cap_waits_while_another_tenant_runs(
    gateway: GatewayService,
) -> None:
    capped = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "capped", balance=10.0, max_workers=1)
    )
    other = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "other", balance=10.0)
    )
    first = await gateway.submit_job(capped, _job("import time; time.sleep(4)"))

    async def first_runs() -> bool:
        return (await gateway.get_job(capped, first.id)).state is JobState.RUNNING

    await until("the capped tenant's first job runs", first_runs)
    second = await gateway.submit_job(capped, _job("print('second')"))
    theirs = await gateway.submit_job(other, _job("print('theirs')"))

    async def theirs_done() -> bool:
        return (await gateway.get_job(other, theirs.id)).state.is_terminal

    await until("the other tenant's job ends", theirs_done)
    assert (await gateway.get_job(other, theirs.id)).state is JobState.SUCCEEDED
    # Idle workers were on offer all along, and unplaceable_timeout_s long passed: the job
    # waits on its tenant's quota, queued, not failed.
    assert (await gateway.get_job(capped, first.id)).state is JobState.RUNNING
    assert (await gateway.get_job(capped, second.id)).state is JobState.QUEUED

    async def second_done() -> bool:
        return (await gateway.get_job(capped, second.id)).state.is_terminal

    await until("the capped tenant's second job ends", second_done)
    ran, done = await gateway.get_job(capped, second.id), await gateway.get_job(capped, first.id)
    assert ran.state is JobState.SUCCEEDED and "second" in ran.stdout_tail, ran
    assert done.finished_at is not None and ran.started_at is not None
    assert ran.started_at >= done.finished_at
