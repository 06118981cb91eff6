"""Money that balances: every job's worst case is held at submit, concurrent submits cannot
overspend, a job is charged what its worker says it ran (signed), and the ledger always adds
up — on SQLite and PostgreSQL (the ``store`` fixture runs both).

The miners here are doubles (``_Supply``): what is under test is the gateway's billing and
the store's holds, which are real; the real miners and workers bill end to end in
``test_gateway_e2e`` and ``test_leases_e2e``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byteleap.config import GatewaySettings
from byteleap.gateway.core import GatewayService
from byteleap.gateway.errors import Conflict, PaymentRequired
from byteleap.gateway.port import Tenant
from byteleap.protocol.api import JobSpec, JobState
from byteleap.store import Store, available, get_job, get_tenant, ledger, list_jobs
from byteleap.store.cloud import create_tenant
from byteleap.store.models import TenantHold
from gateway.money_doubles import PRICE, T0
from gateway.money_doubles import Clock as _Clock
from gateway.money_doubles import CpuSupply as _Supply

_names = itertools.count()


async def _gateway(store: Store, balance: float) -> tuple[GatewayService, Tenant, _Clock]:
    clock = _Clock()
    gateway = GatewayService(store, _Supply(), GatewaySettings(), clock=clock)
    async with store.session() as s:
        record = await create_tenant(s, f"t{next(_names)}", balance=balance, at=int(T0))
    tenant = Tenant(
        id=record.id,
        name=record.name,
        balance=record.balance,
        max_running_jobs=record.max_running_jobs,
        max_queued_jobs=record.max_queued_jobs,
    )
    return gateway, tenant, clock


def _spec(timeout_s: float, **more: Any) -> JobSpec:
    return JobSpec.model_validate(
        {
            "command": ["sleep", "1"],
            "timeout_s": timeout_s,
            "max_price_per_s": PRICE,
            **more,
        }
    )


async def _submit_all(
    gateway: GatewayService, tenant: Tenant, specs: list[JobSpec]
) -> list[str | PaymentRequired]:
    async def one(spec: JobSpec) -> str | PaymentRequired:
        try:
            return (await gateway.submit_job(tenant, spec)).id
        except PaymentRequired as exc:
            return exc

    return list(await asyncio.gather(*(one(spec) for spec in specs)))


@pytest.mark.adversarial
async def test_five_jobs_worth_the_whole_balance_each_admit_one(store: Store) -> None:
    """Finding 5: the balance was checked per job, so five such jobs all ran (three billed 0)."""
    gateway, tenant, _ = await _gateway(store, balance=1.0)
    whole = _spec(timeout_s=1.0 / PRICE)  # price × timeout == the balance

    outcomes = await _submit_all(gateway, tenant, [whole] * 5)

    accepted = [o for o in outcomes if isinstance(o, str)]
    assert len(accepted) == 1
    assert all("does not cover" in str(o) for o in outcomes if not isinstance(o, str))
    async with store.session() as s:
        assert await available(s, tenant.id) == pytest.approx(0.0)


async def test_a_job_is_billed_its_workers_signed_run_time_not_the_gateways_delay(
    store: Store,
) -> None:
    """Finding 5: a 6.0 s run was billed 13.9 s, the time until the gateway looked again."""
    gateway, tenant, clock = await _gateway(store, balance=10.0)
    job = await gateway.submit_job(tenant, _spec(timeout_s=60))
    await gateway.dispatcher.dispatch_once()
    supply = gateway.pool
    assert isinstance(supply, _Supply)
    supply.miner.ended[f"{job.id}-a1"] = 6.0
    clock.now = T0 + 13.9  # the gateway was down meanwhile

    await gateway.dispatcher.monitor_once()

    async with store.session() as s:
        ended = await get_job(s, job.id)
        rows = await ledger(s, tenant.id)
        assert await available(s, tenant.id) == pytest.approx(10.0 - 6.0 * PRICE)
    assert ended.state is JobState.SUCCEEDED
    assert ended.cost == pytest.approx(6.0 * PRICE)
    assert [-r.amount for r in rows] == [ended.cost]


@pytest.mark.adversarial
async def test_run_times_signed_by_another_key_are_not_believed(store: Store) -> None:
    gateway, tenant, clock = await _gateway(store, balance=10.0)
    job = await gateway.submit_job(tenant, _spec(timeout_s=60))
    await gateway.dispatcher.dispatch_once()
    supply = gateway.pool
    assert isinstance(supply, _Supply)
    # A miner claiming its worker ran for 0.1 s, signed with a key of its own making.
    supply.miner.sign_with = Ed25519PrivateKey.generate()
    supply.miner.ended[f"{job.id}-a1"] = 0.1
    clock.now = T0 + 5.0

    await gateway.dispatcher.monitor_once()

    async with store.session() as s:
        ended = await get_job(s, job.id)
    assert ended.cost == pytest.approx(5.0 * PRICE)  # the gateway's own view


async def test_a_job_never_costs_more_than_its_worst_case(store: Store) -> None:
    gateway, tenant, clock = await _gateway(store, balance=10.0)
    job = await gateway.submit_job(tenant, _spec(timeout_s=5))
    await gateway.dispatcher.dispatch_once()
    clock.now = T0 + 500  # a miner that never reported the end, seen late and unsigned
    await gateway.cancel_job(tenant, job.id)

    async with store.session() as s:
        ended = await get_job(s, job.id)
        assert await available(s, tenant.id) == pytest.approx(10.0 - 5 * PRICE)
    assert ended.cost == pytest.approx(5 * PRICE)


_runs = st.lists(
    st.tuples(
        st.integers(min_value=1, max_value=400),  # timeout_s
        st.one_of(st.none(), st.floats(min_value=0, max_value=500)),  # ran_s; None: cancelled
    ),
    min_size=1,
    max_size=8,
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(balance=st.floats(min_value=0, max_value=1.0), runs=_runs)
async def test_the_ledger_balances_under_concurrent_submits(
    store: Store, balance: float, runs: list[tuple[int, float | None]]
) -> None:
    """Concurrent submits, then every admitted job ends (or is cancelled) after any time:
    the balance is the opening balance plus the ledger, the charges are the jobs' costs,
    no job costs more than its worst case, no hold is left and nothing went below zero."""
    gateway, tenant, clock = await _gateway(store, balance=balance)
    specs = [_spec(timeout_s=t) for t, _ in runs]
    outcomes = await _submit_all(gateway, tenant, specs)
    admitted = {o: run for o, run in zip(outcomes, runs, strict=True) if isinstance(o, str)}
    worst = sum(t * PRICE for t, _ in admitted.values())
    assert worst <= balance + 1e-12

    await gateway.dispatcher.dispatch_once()
    supply = gateway.pool
    assert isinstance(supply, _Supply)
    for job_id, (_, ran_s) in admitted.items():
        if ran_s is not None:
            supply.miner.ended[f"{job_id}-a1"] = ran_s
    clock.now = T0 + 600
    await gateway.dispatcher.monitor_once()
    for job_id, (_, ran_s) in admitted.items():
        if ran_s is None:
            await gateway.cancel_job(tenant, job_id)

    async with store.session() as s:
        jobs = await list_jobs(s, tenant_id=tenant.id, limit=100)
        rows = await ledger(s, tenant.id, limit=1000)
        final = (await get_tenant(s, tenant.id)).balance
        holds = await s.scalar(sa.select(sa.func.count()).where(TenantHold.tenant_id == tenant.id))
    assert all(j.state.is_terminal for j in jobs)
    assert final == pytest.approx(balance + sum(r.amount for r in rows), abs=1e-9)
    assert -sum(r.amount for r in rows) == pytest.approx(sum(j.cost for j in jobs), abs=1e-9)
    assert final >= 0 and holds == 0
    for j in jobs:
        timeout = json.loads(j.spec_json)["timeout_s"]
        assert j.cost <= timeout * PRICE + 1e-12


async def test_an_idempotency_key_holds_once_and_another_spec_under_it_is_a_conflict(
    store: Store,
) -> None:
    """The fuzz suite's find: a key reused for another spec was a 500 (a store error)."""
    gateway, tenant, _ = await _gateway(store, balance=1.0)
    spec = _spec(timeout_s=100, idempotency_key="once")
    first = await gateway.submit_job(tenant, spec)
    again = await gateway.submit_job(tenant, spec)
    assert again.id == first.id
    with pytest.raises(Conflict):
        await gateway.submit_job(tenant, _spec(timeout_s=50, idempotency_key="once"))
    async with store.session() as s:
        assert await available(s, tenant.id) == pytest.approx(1.0 - 100 * PRICE)
