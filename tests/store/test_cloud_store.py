"""The gateway's tables in the store, on SQLite and PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import math
from dataclasses import replace

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byteleap.protocol.api import JOB_TRANSITIONS, JobState
from byteleap.store import (
    IllegalTransition,
    InsufficientFunds,
    JobRecord,
    RecordNotFound,
    Store,
    StoreConflict,
    add_api_key,
    advance_job,
    available,
    charge,
    count_jobs,
    create_tenant,
    credit,
    get_job,
    get_tenant,
    held_for,
    hold,
    insert_job,
    ledger,
    list_jobs,
    release,
    revoke_api_key,
    tenant_by_key_hash,
    update_job,
)

T0 = 1_700_000_000
_ids = itertools.count()
J = JobState


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _job(
    tenant_id: int, *, key: str | None = None, spec: str = '{"command":["true"]}', at: float = T0
) -> JobRecord:
    return JobRecord(
        id=f"job_{next(_ids):06d}",
        tenant_id=tenant_id,
        state=J.QUEUED,
        spec_json=spec,
        idempotency_key=key,
        attempts=0,
        worker_id=None,
        miner_hotkey=None,
        created_at=float(at),
        started_at=None,
        finished_at=None,
        exit_code=None,
        stdout_tail="",
        stderr_tail="",
        error=None,
        cost=0.0,
    )


async def _tenant(store: Store, name: str = "acme", balance: float = 10.0) -> int:
    async with store.session() as s:
        return (await create_tenant(s, name, balance=balance, at=T0)).id


# -- tenants and keys -----------------------------------------------------------------------


async def test_tenant_round_trip_and_unique_name(store: Store) -> None:
    async with store.session() as s:
        t = await create_tenant(s, "acme", balance=5.0, max_running_jobs=2, at=T0)
        assert (t.name, t.balance, t.max_running_jobs, t.max_queued_jobs) == ("acme", 5.0, 2, 1000)
        assert await get_tenant(s, t.id) == t
    with pytest.raises(StoreConflict, match="acme"):
        async with store.session() as s:
            await create_tenant(s, "acme", balance=1.0, at=T0)
    with pytest.raises(RecordNotFound):
        async with store.session() as s:
            await get_tenant(s, t.id + 1)


@pytest.mark.parametrize("balance", [-1.0, math.nan, math.inf])
async def test_tenant_refuses_a_bad_balance(store: Store, balance: float) -> None:
    with pytest.raises(ValueError, match="balance"):
        async with store.session() as s:
            await create_tenant(s, "acme", balance=balance, at=T0)


async def test_keys_find_their_tenant_until_revoked(store: Store) -> None:
    acme, other = await _tenant(store, "acme"), await _tenant(store, "other")
    async with store.session() as s:
        await add_api_key(s, acme, _hash("k1"), at=T0)
        await add_api_key(s, acme, _hash("k2"), at=T0)
        await add_api_key(s, other, _hash("k3"), at=T0)
    async with store.session() as s:
        found = await tenant_by_key_hash(s, _hash("k1"))
        assert found is not None and found.id == acme
        found = await tenant_by_key_hash(s, _hash("k3"))
        assert found is not None and found.id == other
        assert await tenant_by_key_hash(s, _hash("unknown")) is None
        assert await revoke_api_key(s, _hash("k1"), at=T0 + 1) is True
        assert await revoke_api_key(s, _hash("k1"), at=T0 + 2) is False  # already revoked
        assert await revoke_api_key(s, _hash("unknown"), at=T0) is False
    async with store.session() as s:
        assert await tenant_by_key_hash(s, _hash("k1")) is None
        found = await tenant_by_key_hash(s, _hash("k2"))  # the tenant's other key still works
        assert found is not None and found.id == acme


async def test_a_key_hash_belongs_to_one_tenant(store: Store) -> None:
    acme, other = await _tenant(store, "acme"), await _tenant(store, "other")
    async with store.session() as s:
        await add_api_key(s, acme, _hash("k"), at=T0)
    with pytest.raises(StoreConflict):
        async with store.session() as s:
            await add_api_key(s, other, _hash("k"), at=T0)
    with pytest.raises(RecordNotFound):
        async with store.session() as s:
            await add_api_key(s, other + 99, _hash("k9"), at=T0)


# -- balance and ledger ---------------------------------------------------------------------


async def test_a_charge_is_whole_or_refused_and_every_move_is_in_the_ledger(
    store: Store,
) -> None:
    acme = await _tenant(store, balance=10.0)
    async with store.session() as s:
        assert await charge(s, acme, 3.0, reason="job", job_id="job_a", at=T0 + 1) == 3.0
    # No clamp: a charge the balance cannot cover is refused whole and changes nothing.
    with pytest.raises(InsufficientFunds):
        async with store.session() as s:
            await charge(s, acme, 10.0, reason="job", job_id="job_b", at=T0 + 2)
    async with store.session() as s:
        assert (await get_tenant(s, acme)).balance == 7.0
        assert await charge(s, acme, 7.0, reason="lease", job_id=None, at=T0 + 3) == 7.0
        assert (await get_tenant(s, acme)).balance == 0.0
        assert await credit(s, acme, 2.5, reason="top-up", job_id=None, at=T0 + 4) == 2.5
        assert await charge(s, acme, 0.0, reason="job", job_id="job_c", at=T0 + 5) == 0.0
        rows = await ledger(s, acme)
    got = [(r.amount, r.balance_after, r.reason, r.job_id, r.at) for r in rows]
    assert got == [
        (-0.0, 2.5, "job", "job_c", T0 + 5),
        (2.5, 2.5, "top-up", None, T0 + 4),
        (-7.0, 0.0, "lease", None, T0 + 3),
        (-3.0, 7.0, "job", "job_a", T0 + 1),
    ]
    assert 10.0 + sum(r.amount for r in rows) == pytest.approx(2.5)
    async with store.session() as s:
        assert [r.job_id for r in await ledger(s, acme, limit=2)] == ["job_c", None]


async def test_a_hold_sets_money_aside_and_its_item_is_charged_from_it(store: Store) -> None:
    acme = await _tenant(store, balance=10.0)
    async with store.session() as s:
        assert await hold(s, acme, "job_a", 6.0, at=T0) == 6.0
        assert await available(s, acme) == 4.0
    with pytest.raises(InsufficientFunds):  # 4 free, 5 asked: nothing held
        async with store.session() as s:
            await hold(s, acme, "job_b", 5.0, at=T0)
    async with store.session() as s:
        assert await held_for(s, "job_b") == 0.0
        assert await hold(s, acme, "job_a", 1.0, at=T0) == 7.0  # a lease extended
        # The item's own hold pays first: 2 of job_a's 7 leave 5 held, 3 free.
        assert await charge(s, acme, 2.0, reason="job", job_id="job_a", at=T0 + 1) == 2.0
        assert (await held_for(s, "job_a"), await available(s, acme)) == (5.0, 3.0)
        # Another item cannot spend job_a's hold.
    with pytest.raises(InsufficientFunds):
        async with store.session() as s:
            await charge(s, acme, 4.0, reason="job", job_id="job_x", at=T0 + 2)
    async with store.session() as s:
        assert await release(s, "job_a") == 5.0
        assert await release(s, "job_a") == 0.0
        assert (await get_tenant(s, acme)).balance == 8.0
        assert await available(s, acme) == 8.0


_money = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(start=_money, moves=st.lists(st.tuples(st.booleans(), _money), max_size=12))
async def test_balance_is_the_ledger_and_never_negative(
    store: Store, start: float, moves: list[tuple[bool, float]]
) -> None:
    name = f"t{next(_ids)}"
    async with store.session() as s:
        tid = (await create_tenant(s, name, balance=start, at=T0)).id
    expected, written = start, 0
    for is_charge, amount in moves:
        if is_charge and amount > expected:
            with pytest.raises(InsufficientFunds):
                async with store.session() as s:
                    await charge(s, tid, amount, reason="job", job_id=None, at=T0)
        elif is_charge:
            async with store.session() as s:
                assert await charge(s, tid, amount, reason="job", job_id=None, at=T0) == amount
            expected, written = expected - amount, written + 1
        else:
            async with store.session() as s:
                got = await credit(s, tid, amount, reason="top-up", job_id=None, at=T0)
            assert got == expected + amount
            expected, written = expected + amount, written + 1
        async with store.session() as s:
            assert (await get_tenant(s, tid)).balance == expected >= 0.0
    async with store.session() as s:
        rows = await ledger(s, tid, limit=100)
    assert len(rows) == written
    previous = start
    for row in reversed(rows):  # oldest first: each row moves the balance by its amount
        assert row.balance_after >= 0.0
        assert row.balance_after == pytest.approx(previous + row.amount, abs=1e-6)
        previous = row.balance_after
    assert previous == expected


@pytest.mark.parametrize("amount", [-0.01, math.nan, math.inf])
async def test_charge_and_credit_refuse_bad_amounts(store: Store, amount: float) -> None:
    acme = await _tenant(store)
    for move in (charge, credit):
        with pytest.raises(ValueError, match="finite"):
            async with store.session() as s:
                await move(s, acme, amount, reason="x", job_id=None, at=T0)
    async with store.session() as s:
        assert (await get_tenant(s, acme)).balance == 10.0
        assert await ledger(s, acme) == []


async def test_charging_an_unknown_tenant_is_not_found(store: Store) -> None:
    with pytest.raises(RecordNotFound):
        async with store.session() as s:
            await charge(s, 12345, 1.0, reason="job", job_id=None, at=T0)


async def test_the_balance_check_constraint_holds(store: Store) -> None:
    acme = await _tenant(store)
    with pytest.raises(StoreConflict):
        async with store.session() as s:
            await s.execute(sa.text("UPDATE tenants SET balance = -1 WHERE id = :i"), {"i": acme})


async def test_concurrent_charges_spend_the_money_once(store: Store) -> None:
    acme = await _tenant(store, balance=10.0)

    async def one() -> float:
        async with store.session() as s:
            return await charge(s, acme, 1.5, reason="job", job_id=None, at=T0)

    charged = await asyncio.gather(*(one() for _ in range(12)), return_exceptions=True)
    # Six charges of 1.5 fit in 10; the other six are refused whole, none clamped.
    assert sorted(c for c in charged if isinstance(c, float)) == [1.5] * 6
    assert all(isinstance(c, InsufficientFunds) for c in charged if not isinstance(c, float))
    async with store.session() as s:
        assert (await get_tenant(s, acme)).balance == pytest.approx(1.0)
        assert sum(r.amount for r in await ledger(s, acme)) == pytest.approx(-9.0)


async def test_concurrent_holds_never_set_aside_more_than_the_balance(store: Store) -> None:
    acme = await _tenant(store, balance=10.0)

    async def one(i: int) -> float:
        async with store.session() as s:
            return await hold(s, acme, f"job_{i}", 3.0, at=T0)

    held = await asyncio.gather(*(one(i) for i in range(8)), return_exceptions=True)
    assert [h for h in held if isinstance(h, float)] == [3.0] * 3
    async with store.session() as s:
        assert await available(s, acme) == pytest.approx(1.0)


# -- jobs: insert, read, list ---------------------------------------------------------------


async def test_insert_is_idempotent_per_tenant_and_key(store: Store) -> None:
    acme, other = await _tenant(store, "acme"), await _tenant(store, "other")
    first = _job(acme, key="k")
    async with store.session() as s:
        stored, created = await insert_job(s, first)
        assert created and stored == first
        again, created = await insert_job(s, _job(acme, key="k"))  # a retried submit
        assert not created and again == first
        theirs, created = await insert_job(s, _job(other, key="k"))  # keys are per tenant
        assert created and theirs.id != first.id
        _, created = await insert_job(s, _job(acme))  # no key: always a new job
        _, created_too = await insert_job(s, _job(acme))
        assert created and created_too
        assert await count_jobs(s, acme, [J.QUEUED]) == 3


async def test_a_key_reused_for_another_spec_is_a_conflict(store: Store) -> None:
    acme = await _tenant(store)
    async with store.session() as s:
        await insert_job(s, _job(acme, key="k"))
        with pytest.raises(StoreConflict, match="different job spec"):
            await insert_job(s, _job(acme, key="k", spec='{"command":["false"]}'))
        assert len(await list_jobs(s, tenant_id=acme)) == 1


async def test_a_job_id_clash_is_a_conflict(store: Store) -> None:
    acme = await _tenant(store)
    job = _job(acme)
    async with store.session() as s:
        await insert_job(s, job)
        with pytest.raises(StoreConflict, match="taken"):
            await insert_job(s, replace(job, spec_json="{}"))


async def test_another_tenants_job_is_not_found(store: Store) -> None:
    acme, other = await _tenant(store, "acme"), await _tenant(store, "other")
    job = _job(acme)
    async with store.session() as s:
        await insert_job(s, job)
        assert (await get_job(s, job.id, tenant_id=acme)).id == job.id
        assert (await get_job(s, job.id)).id == job.id
        with pytest.raises(RecordNotFound):
            await get_job(s, job.id, tenant_id=other)
        with pytest.raises(RecordNotFound):
            await get_job(s, "job_nope")


async def test_list_and_count(store: Store) -> None:
    acme, other = await _tenant(store, "acme"), await _tenant(store, "other")
    mine = [_job(acme, at=T0 + i) for i in range(5)]
    theirs = _job(other, at=T0 + 10)
    async with store.session() as s:
        for job in [*mine, theirs]:
            await insert_job(s, job)
        await advance_job(s, mine[1].id, J.SCHEDULED, at=T0 + 20)
        await advance_job(s, mine[2].id, J.CANCELLED, at=T0 + 20)
    async with store.session() as s:
        newest_first = [j.id for j in await list_jobs(s, tenant_id=acme)]
        assert newest_first == [j.id for j in reversed(mine)]
        assert [j.id for j in await list_jobs(s, tenant_id=acme, limit=2)] == newest_first[:2]
        everyone = [j.id for j in await list_jobs(s)]
        assert everyone == [theirs.id, *newest_first]
        queued = await list_jobs(s, states=[J.QUEUED], oldest_first=True)
        assert [j.id for j in queued] == [mine[0].id, mine[3].id, mine[4].id, theirs.id]
        active = await list_jobs(s, tenant_id=acme, states={J.QUEUED, J.SCHEDULED})
        assert {j.id for j in active} == {mine[0].id, mine[1].id, mine[3].id, mine[4].id}
        assert await list_jobs(s, states=[]) == []
        assert await count_jobs(s, acme, [J.QUEUED, J.SCHEDULED, J.RUNNING]) == 4
        assert await count_jobs(s, acme, [J.CANCELLED]) == 1
        assert await count_jobs(s, other, [J.CANCELLED]) == 0
        assert await count_jobs(s, acme, []) == 0


# -- jobs: transitions ----------------------------------------------------------------------

# A legal way from queued to every state, so each pair of the table can be tried.
_PATH = {
    J.QUEUED: [],
    J.SCHEDULED: [J.SCHEDULED],
    J.RUNNING: [J.SCHEDULED, J.RUNNING],
    J.SUCCEEDED: [J.SCHEDULED, J.RUNNING, J.SUCCEEDED],
    J.FAILED: [J.FAILED],
    J.CANCELLED: [J.CANCELLED],
    J.TIMED_OUT: [J.SCHEDULED, J.RUNNING, J.TIMED_OUT],
}


async def test_every_move_follows_the_transition_table(store: Store) -> None:
    acme = await _tenant(store)
    for current, new in itertools.product(JobState, JobState):
        job = _job(acme)
        async with store.session() as s:
            await insert_job(s, job)
            for step in _PATH[current]:
                await advance_job(s, job.id, step, at=T0 + 1)
            before = await get_job(s, job.id)
            assert before.state is current
            if new in JOB_TRANSITIONS[current]:
                after = await advance_job(s, job.id, new, at=T0 + 2, error="e")
                assert (after.state, after.error) == (new, "e")
            else:
                with pytest.raises(
                    IllegalTransition, match="terminal" if current.is_terminal else "not allowed"
                ):
                    await advance_job(s, job.id, new, at=T0 + 2, error="e")
                assert await get_job(s, job.id) == before  # nothing changed


async def test_advance_writes_fields_and_finishes_terminal_states(store: Store) -> None:
    acme = await _tenant(store)
    job = _job(acme)
    async with store.session() as s:
        await insert_job(s, job)
        got = await advance_job(
            s, job.id, J.SCHEDULED, at=T0 + 1, attempts=1, worker_id="w1", miner_hotkey="5Hk"
        )
        assert (got.attempts, got.worker_id, got.miner_hotkey, got.finished_at) == (
            1, "w1", "5Hk", None,
        )  # fmt: skip
        got = await advance_job(s, job.id, J.QUEUED, at=T0 + 2, worker_id=None, error="lost")
        assert (got.worker_id, got.miner_hotkey, got.error) == (None, "5Hk", "lost")
        await advance_job(s, job.id, J.SCHEDULED, at=T0 + 3, attempts=2, worker_id="w2")
        await advance_job(s, job.id, J.RUNNING, at=T0 + 4, started_at=T0 + 4.25)
        done = await advance_job(
            s, job.id, J.SUCCEEDED, at=T0 + 9.5, exit_code=0, stdout_tail="hi\n", cost=1.25
        )
    assert done.finished_at == T0 + 9.5
    assert (done.started_at, done.exit_code, done.stdout_tail, done.cost) == (
        T0 + 4.25, 0, "hi\n", 1.25,
    )  # fmt: skip
    other = _job(acme)
    async with store.session() as s:
        await insert_job(s, other)
        got = await advance_job(s, other.id, J.CANCELLED, at=T0 + 5, finished_at=T0 + 4.0)
    assert got.finished_at == T0 + 4.0  # a given finished_at wins


async def test_advance_refuses_unknown_fields_bad_costs_and_missing_jobs(store: Store) -> None:
    acme = await _tenant(store)
    job = _job(acme)
    async with store.session() as s:
        await insert_job(s, job)
        with pytest.raises(TypeError, match="state"):
            await advance_job(s, job.id, J.SCHEDULED, at=T0, state=J.RUNNING)
        with pytest.raises(TypeError, match="tenant_id"):
            await update_job(s, job.id, tenant_id=2)
        for cost in (-1.0, math.nan, math.inf, "1"):
            with pytest.raises(ValueError, match="cost"):
                await advance_job(s, job.id, J.SCHEDULED, at=T0, cost=cost)
        assert await get_job(s, job.id) == job
        with pytest.raises(RecordNotFound):
            await advance_job(s, "job_nope", J.SCHEDULED, at=T0)
        with pytest.raises(RecordNotFound):
            await update_job(s, "job_nope", cost=1.0)


async def test_update_changes_a_live_job_and_refuses_an_ended_one(store: Store) -> None:
    acme = await _tenant(store)
    job = _job(acme)
    async with store.session() as s:
        await insert_job(s, job)
        await advance_job(s, job.id, J.SCHEDULED, at=T0)
        await advance_job(s, job.id, J.RUNNING, at=T0, started_at=float(T0))
        got = await update_job(s, job.id, cost=0.5, stdout_tail="partial")
        assert (got.state, got.cost, got.stdout_tail) == (J.RUNNING, 0.5, "partial")
        final = await advance_job(s, job.id, J.FAILED, at=T0 + 3, cost=0.75, exit_code=1)
        with pytest.raises(IllegalTransition, match="final"):
            await update_job(s, job.id, cost=0.6)
        assert await get_job(s, job.id) == final
        assert await update_job(s, job.id) == final  # nothing to write is not a change


async def test_concurrent_endings_finish_a_job_once(store: Store) -> None:
    acme = await _tenant(store)
    job = _job(acme)
    async with store.session() as s:
        await insert_job(s, job)
        await advance_job(s, job.id, J.SCHEDULED, at=T0)
        await advance_job(s, job.id, J.RUNNING, at=T0)

    async def end(state: JobState) -> JobState:
        async with store.session() as s:
            return (await advance_job(s, job.id, state, at=T0 + 1)).state

    outcomes = await asyncio.gather(
        *(end(st) for st in (J.SUCCEEDED, J.CANCELLED, J.TIMED_OUT, J.FAILED)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, JobState)]
    assert len(won) == 1
    assert all(isinstance(o, IllegalTransition) for o in outcomes if o not in won)
    async with store.session() as s:
        assert (await get_job(s, job.id)).state is won[0]
