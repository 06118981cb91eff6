"""The fuzz suite (issue 17, "keep it fixed"): schemathesis drives every REST endpoint of a
real gateway statefully — jobs, leases and services chained by the ids they return — on a
real network (chain, miner, three CPU workers) with its store on PostgreSQL, while another
tenant keeps submitting a small job. Afterwards:

- no request got a 5xx (the documented ``no_capacity`` 503 aside);
- every accepted job ended (succeeded, failed, cancelled or timed out) within a grace;
- every worker is idle again;
- the ledger balances: each tenant's balance is its opening balance plus its ledger, the
  charges are the billed items' costs, and no hold is left;
- the other tenant's jobs all ran, each within a bound, however the fuzzer's requests went.
  They run on that tenant's own lease: the invariant (issue 17) is that a job placed in the
  same dispatch pass as the fuzzer's is unaffected, not that one tenant may never lease every
  worker there is (nothing yet caps how many workers one tenant holds at once).

Bounded: a handful of hypothesis examples of a few steps each. The commands schemathesis
generates are replaced by harmless short programs (``_SAFE``) and images dropped: the
workers here run what they are given as this machine's user.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from itertools import cycle
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis.errors import FlakyStrategyDefinition  # noqa: E402
from schemathesis.generation.stateful.state_machine import APIStateMachine  # noqa: E402

from byteleap.config import ServiceSettings  # noqa: E402
from byteleap.gateway.core import GatewayService, create_tenant_with_key  # noqa: E402
from byteleap.gateway.rest import create_rest_app  # noqa: E402
from byteleap.gateway.rest_services import mount_services  # noqa: E402
from byteleap.gateway.service_desk import ServiceDesk  # noqa: E402
from byteleap.net.messages import WorkerState  # noqa: E402
from byteleap.net.miner_client import MinerClient  # noqa: E402
from byteleap.protocol.api import JobSpec, JobState, LeaseSpec, LeaseState, LeaseView  # noqa: E402
from byteleap.store import Store, get_tenant, ledger, list_jobs, open_store, upgrade  # noqa: E402
from byteleap.store.leases import list_leases  # noqa: E402
from byteleap.store.models import ServiceReplica, TenantHold  # noqa: E402
from gateway.gateway_harness import lease_desk, miner_pool, network_settings, until  # noqa: E402
from network_fixtures import miner_neuron  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.adversarial, pytest.mark.postgres]

OPENING = 5.0
_SAFE = cycle(
    [
        [sys.executable, "-c", "print('fuzz')"],
        ["true"],
        ["false"],
        ["sleep", "0.3"],
        [sys.executable, "-c", "import sys; sys.stdout.write('x' * 200000)"],
    ]
)


@dataclass
class Served:
    url: str
    gateway: GatewayService
    desk: ServiceDesk
    fuzzer_key: str
    canary_key: str
    errors: list[str] = field(default_factory=list)  # 5xx answers, method path status body
    calls: Counter[tuple[str, str, int]] = field(default_factory=Counter)


@pytest.fixture
async def served(
    network: Any, workers: dict[str, str], pg_url: str, free_port: Callable[[], int]
) -> AsyncIterator[Served]:
    await upgrade(pg_url)
    store = await open_store(pg_url)
    settings = network_settings(
        network,
        bill_period_s=1.0,
        unplaceable_timeout_s=5.0,
        services=ServiceSettings(interval_s=0.3, health_timeout_s=2.0, lease_horizon_s=60),
    )
    async with miner_pool(network, settings) as pool:
        leasing = lease_desk(network, store, pool, settings, bill_period_s=1.0)
        gateway = GatewayService(store, pool, settings, leasing=leasing)
        desk = ServiceDesk(store, pool, settings, leasing=leasing)
        app = create_rest_app(gateway)
        mount_services(app, desk)
        port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        server = uvicorn.Server(config)
        tasks = [
            asyncio.create_task(server.serve()),
            asyncio.create_task(gateway.run()),
            asyncio.create_task(desk.run()),
        ]

        async def started() -> bool:
            return server.started

        await until("the gateway serves", started, timeout_s=10)
        fuzzer = await create_tenant_with_key(store, "fuzzer", balance=OPENING)
        canary = await create_tenant_with_key(store, "canary", balance=OPENING)
        try:
            yield Served(f"http://127.0.0.1:{port}", gateway, desk, fuzzer, canary)
        finally:
            server.should_exit = True
            for task in tasks[1:]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await desk.close()
    await store.close()


def _harmless(case: Any) -> None:
    body = case.body
    if isinstance(body, dict) and "command" in body:
        body["command"] = next(_SAFE)
        body.pop("image", None)  # no registry here: nothing to pull, nothing pulled


def _check(served: Served, case: Any, response: Any) -> None:
    served.calls[(case.method, case.path, response.status_code)] += 1
    if response.status_code < 500:
        return
    if response.status_code == 503 and _no_capacity(case, response):
        return  # the API's answer for "no worker fits now", documented
    served.errors.append(
        f"{case.method} {case.formatted_path} -> {response.status_code}: {response.text[:300]}"
    )


def _submits(served: Served, examples: int) -> None:
    """Job submission alone, many times: the state machine's inferred links start from
    services and leases and rarely reach it."""
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    auth = {"Authorization": f"Bearer {served.fuzzer_key}"}

    @given(case=schema["/v1/jobs"]["POST"].as_strategy())
    @settings(
        max_examples=examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    def submit(case: Any) -> None:
        _harmless(case)
        _check(served, case, case.call(headers=auth))

    submit()


def _machine(served: Served) -> type[APIStateMachine]:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    base = schema.as_state_machine()
    auth = {"Authorization": f"Bearer {served.fuzzer_key}"}

    class Fuzz(base):  # type: ignore[valid-type, misc]
        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            kwargs = dict(super().get_call_kwargs(case))
            kwargs["headers"] = {**kwargs.get("headers", {}), **auth}
            return kwargs

        def before_call(self, case: Any) -> None:
            super().before_call(case)
            _harmless(case)

        def validate_response(self, response: Any, case: Any, *args: Any, **kw: Any) -> None:
            _check(served, case, response)

    return Fuzz


def _no_capacity(case: Any, response: Any) -> bool:
    """The documented 503: no worker fits (a lease) or no replica is ready (invoke); a HEAD
    answer has no body to say so, and is that answer only on an invoke path."""
    if case.method == "HEAD":
        return "/invoke/" in case.formatted_path
    try:
        return bool(response.json()["error"] == "no_capacity")
    except (ValueError, KeyError, TypeError):
        return False


async def _canary_lease(served: Served, workers: dict[str, str]) -> LeaseView:
    """The canary tenant's own honest worker (w3 never answers a lease probe, so a lease there
    fails): a lease that lands on w3 is kept while the next is made, then released."""
    gateway = served.gateway
    tenant = await gateway.authenticate(served.canary_key)
    honest = {workers["w1"], workers["w2"]}
    on_w3: list[LeaseView] = []
    for _ in range(3):
        lease = await gateway.create_lease(tenant, LeaseSpec(duration_s=900))
        if lease.worker_id in honest:
            break
        on_w3.append(lease)
    else:
        raise AssertionError(f"no lease landed on an honest worker: {on_w3}")
    for stray in on_w3:
        await gateway.release_lease(tenant, stray.id)
    return lease


async def _canary(
    served: Served, lease: LeaseView, delays: list[float], stop: asyncio.Event
) -> None:
    """Another tenant's small job on its own lease, again and again, each awaited to its end:
    it goes through the same dispatch passes as the fuzzer's jobs."""
    gateway = served.gateway
    tenant = await gateway.authenticate(served.canary_key)
    spec = JobSpec(
        command=[sys.executable, "-c", "print('canary')"], timeout_s=30, lease_id=lease.id
    )
    while not stop.is_set():
        began = time.monotonic()
        job = await gateway.submit_job(tenant, spec)

        async def ended(job_id: str = job.id) -> bool:
            return (await gateway.get_job(tenant, job_id)).state.is_terminal

        await until("the canary job ended", ended, timeout_s=60)
        finished = await gateway.get_job(tenant, job.id)
        assert finished.state is JobState.SUCCEEDED, finished
        delays.append(time.monotonic() - began)
        await asyncio.sleep(0.5)


def _fuzz(machine: type[APIStateMachine], budget: settings, runs: int = 3) -> int:
    """Run the state machine ``runs`` times; returns how many runs hypothesis cut short.

    Which rules a schemathesis state machine may take depends on what the server answered
    before (a 201 fills a bundle, a 503 does not), and a live network does not answer the same
    way twice. Hypothesis then stops that run with ``FlakyStrategyDefinition``: a limit of the
    fuzzer, not a finding. The next run starts afresh (``database=None``); every request made
    is still checked, and the invariants below hold for all of them."""
    cut_short = 0
    for _ in range(runs):
        try:
            machine.run(settings=budget)
        except FlakyStrategyDefinition:
            cut_short += 1
    return cut_short


async def _wind_down(served: Served, canary_lease: LeaseView) -> None:
    """End what the fuzzer left running, its leases and services, and the canary's lease."""
    gateway, store = served.gateway, served.gateway.store
    tenant = await gateway.authenticate(served.fuzzer_key)
    async with store.session() as s:
        leases = await list_leases(s, tenant_id=tenant.id, states=[LeaseState.ACTIVE])
    for lease in leases:
        with contextlib.suppress(Exception):  # it may have ended meanwhile
            await gateway.release_lease(tenant, lease.id)
    for service in await served.desk.list_for(tenant):
        with contextlib.suppress(Exception):
            await served.desk.delete(tenant, service.id)
    await gateway.release_lease(await gateway.authenticate(served.canary_key), canary_lease.id)


async def _all_idle(network: Any) -> bool:
    async with MinerClient(network.validator, await miner_neuron(network)) as client:
        return all(w.state is WorkerState.IDLE for w in (await client.workers()).workers)


async def test_fuzzing_every_endpoint_keeps_every_invariant(
    served: Served, network: Any, workers: dict[str, str]
) -> None:
    machine = await asyncio.to_thread(_machine, served)
    delays: list[float] = []
    stop = asyncio.Event()
    canary_lease = await _canary_lease(served, workers)
    canary = asyncio.create_task(_canary(served, canary_lease, delays, stop))
    budget = settings(
        max_examples=5,
        stateful_step_count=10,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    try:
        await asyncio.to_thread(_submits, served, 40)
        cut_short = await asyncio.to_thread(_fuzz, machine, budget)
    finally:
        stop.set()
        await asyncio.gather(canary, return_exceptions=False)

    print(f"runs cut short: {cut_short}; fuzzed calls {sum(served.calls.values())}:")
    print(sorted(served.calls.items()))
    assert served.errors == [], "\n".join(served.errors)
    assert delays and max(delays) < 30, delays

    await _wind_down(served, canary_lease)
    store = served.gateway.store

    async def jobs_ended() -> bool:
        async with store.session() as s:
            return all(j.state.is_terminal for j in await list_jobs(s, limit=10_000))

    await until("every accepted job ended", jobs_ended, timeout_s=60)

    async def replicas_ended() -> bool:
        async with store.session() as s:
            live = await s.scalar(
                sa.select(sa.func.count()).where(ServiceReplica.ended_at.is_(None))
            )
        return live == 0

    await until("every replica ended", replicas_ended, timeout_s=60)
    await until("every worker is idle again", lambda: _all_idle(network), timeout_s=60)
    await _ledger_balances(store)


_BILLED = {"job": "jobs", "lease": "leases", "service": "service_replicas"}  # reason -> items


async def _ledger_balances(store: Store) -> None:
    async with store.session() as s:
        for tenant_id in (1, 2):
            tenant = await get_tenant(s, tenant_id)
            rows = await ledger(s, tenant_id, limit=100_000)
            assert tenant.balance == pytest.approx(OPENING + sum(r.amount for r in rows))
            assert tenant.balance >= 0
        charged, costs = {}, {}
        for reason, table in (
            ("job", "jobs"),
            ("lease", "leases"),
            ("service", "service_replicas"),
        ):
            charged[reason] = -float(
                await s.scalar(
                    sa.text("SELECT COALESCE(SUM(amount), 0) FROM tenant_ledger WHERE reason = :r"),
                    {"r": reason},
                )
            )
            costs[reason] = float(
                await s.scalar(sa.text(f"SELECT COALESCE(SUM(cost), 0) FROM {table}"))
            )
        holds = await s.scalar(sa.select(sa.func.count()).select_from(TenantHold))
    for reason, amount in charged.items():
        assert amount == pytest.approx(costs[reason], abs=1e-9), (reason, charged, costs)
    assert holds == 0
