"""Leases in the store, on SQLite and PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

import asyncio
import itertools
import math
from dataclasses import replace

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byteleap.protocol.api import LeaseState
from byteleap.store import (
    LEASE_TRANSITIONS,
    AlreadyBilled,
    IllegalTransition,
    LeaseRecord,
    RecordNotFound,
    Store,
    StoreConflict,
    count_leases,
    create_tenant,
    end_lease,
    extend_lease,
    get_lease,
    insert_lease,
    list_leases,
    record_billing,
)

T0 = 1_700_000_000.0
_ids = itertools.count()
L = LeaseState
ENDINGS = [L.RELEASED, L.EXPIRED, L.FAILED]


def _lease(tenant_id: int, *, at: float = T0, duration: float = 600.0) -> LeaseRecord:
    return LeaseRecord(
        id=f"lease_{next(_ids):06d}",
        tenant_id=tenant_id,
        state=L.ACTIVE,
        spec_json='{"duration_s":600}',
        worker_id="w1",
        miner_hotkey="5Hminer",
        gpu_model="H100",
        gpu_count=2,
        price_per_s=0.002,
        unit_price_micro=1000,
        created_at=at,
        ends_at=at + duration,
        ended_at=None,
        billed_until=at,
        cost=0.0,
        receipts=0,
    )


async def _tenant(store: Store, name: str = "acme") -> int:
    async with store.session() as s:
        return (await create_tenant(s, name, balance=10.0, at=int(T0))).id


async def _stored(store: Store, tenant_id: int, **changes: object) -> LeaseRecord:
    async with store.session() as s:
        return await insert_lease(s, replace(_lease(tenant_id), **changes))  # type: ignore[arg-type]


# -- insert, read, list ---------------------------------------------------------------------


async def test_insert_round_trips_and_a_taken_id_is_a_conflict(store: Store) -> None:
    acme = await _tenant(store)
    lease = _lease(acme)
    async with store.session() as s:
        stored = await insert_lease(s, lease)
        assert stored == lease and stored.state is L.ACTIVE and not stored.settled
        assert await get_lease(s, lease.id) == lease
        with pytest.raises(StoreConflict, match="taken"):
            await insert_lease(s, replace(lease, worker_id="w2"))
        assert await get_lease(s, lease.id) == lease  # the transaction is still usable


async def test_another_tenants_lease_is_not_found(store: Store) -> None:
    acme, other = await _tenant(store, "acme"), await _tenant(store, "other")
    lease = await _stored(store, acme)
    async with store.session() as s:
        assert (await get_lease(s, lease.id, tenant_id=acme)).id == lease.id
        with pytest.raises(RecordNotFound):
            await get_lease(s, lease.id, tenant_id=other)
        with pytest.raises(RecordNotFound):
            await get_lease(s, "lease_nope")
        assert await list_leases(s, tenant_id=other) == []


async def test_list_is_newest_first_and_filters(store: Store) -> None:
    acme, other = await _tenant(store, "acme"), await _tenant(store, "other")
    mine = [_lease(acme, at=T0 + i) for i in range(4)]
    theirs = _lease(other, at=T0 + 10)
    async with store.session() as s:
        for lease in [*mine, theirs]:
            await insert_lease(s, lease)
        await end_lease(s, mine[1].id, L.RELEASED, at=T0 + 20)
        await end_lease(s, mine[2].id, L.FAILED, at=T0 + 20)
    async with store.session() as s:
        newest_first = [x.id for x in await list_leases(s, tenant_id=acme)]
        assert newest_first == [x.id for x in reversed(mine)]
        assert [x.id for x in await list_leases(s, tenant_id=acme, limit=2)] == newest_first[:2]
        assert [x.id for x in await list_leases(s)] == [theirs.id, *newest_first]
        active = await list_leases(s, states=[L.ACTIVE])
        assert [x.id for x in active] == [theirs.id, mine[3].id, mine[0].id]
        ended = await list_leases(s, tenant_id=acme, states={L.RELEASED, L.FAILED})
        assert [x.id for x in ended] == [mine[2].id, mine[1].id]
        assert await list_leases(s, states=[]) == []
        assert await count_leases(s, acme, [L.ACTIVE]) == 2
        assert await count_leases(s, acme, ENDINGS) == 2
        assert await count_leases(s, other, [L.RELEASED]) == 0
        assert await count_leases(s, acme, []) == 0


@pytest.mark.parametrize(
    ("column", "value"),
    [("cost", -0.5), ("gpu_count", -1), ("receipts", -1), ("billed_until", T0 + 601)],
)
async def test_the_check_constraints_hold(store: Store, column: str, value: float) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    with pytest.raises(StoreConflict):
        async with store.session() as s:
            await s.execute(
                sa.text(f"UPDATE leases SET {column} = :v WHERE id = :i"),
                {"v": value, "i": lease.id},
            )
    # insert_lease checks the cost itself; the rest reach the database and its checks
    with pytest.raises(ValueError if column == "cost" else StoreConflict):
        await _stored(store, acme, **{column: value})


@pytest.mark.parametrize("bad", [{"cost": math.nan}, {"ends_at": math.inf}, {"price_per_s": -1}])
async def test_insert_refuses_non_finite_or_negative_numbers(
    store: Store, bad: dict[str, float]
) -> None:
    acme = await _tenant(store)
    with pytest.raises(ValueError, match="finite"):
        await _stored(store, acme, **bad)


async def test_a_lease_needs_a_real_tenant(store: Store) -> None:
    with pytest.raises(StoreConflict):
        await _stored(store, 4242)


# -- ending ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ENDINGS)
async def test_ending_sets_the_state_and_ended_at(store: Store, ending: LeaseState) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    async with store.session() as s:
        ended = await end_lease(s, lease.id, ending, at=T0 + 42.5)
    assert (ended.state, ended.ended_at) == (ending, T0 + 42.5)
    assert replace(ended, state=L.ACTIVE, ended_at=None) == lease  # nothing else moved


async def test_every_move_follows_the_transition_table(store: Store) -> None:
    acme = await _tenant(store)
    for current, new in itertools.product(LeaseState, LeaseState):
        lease = await _stored(store, acme)
        async with store.session() as s:
            if current is not L.ACTIVE:
                await end_lease(s, lease.id, current, at=T0 + 1)
            before = await get_lease(s, lease.id)
            if new in LEASE_TRANSITIONS[current]:
                assert (await end_lease(s, lease.id, new, at=T0 + 2)).state is new
            else:
                match = "ended" if current.is_terminal else "not allowed"
                with pytest.raises(IllegalTransition, match=match):
                    await end_lease(s, lease.id, new, at=T0 + 2)
                assert await get_lease(s, lease.id) == before
    assert all(LEASE_TRANSITIONS[x] == set() for x in LeaseState if x.is_terminal)
    assert LEASE_TRANSITIONS[L.ACTIVE] == set(ENDINGS)


@pytest.mark.parametrize("ending", ENDINGS)
async def test_an_ended_lease_refuses_everything(store: Store, ending: LeaseState) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    async with store.session() as s:
        await end_lease(s, lease.id, ending, at=T0 + 100)
        settled = await record_billing(s, lease.id, billed_until=T0 + 100, cost_delta=0.2)
        assert settled.settled and settled.receipts == 1
        for state in LeaseState:
            with pytest.raises(IllegalTransition):
                await end_lease(s, lease.id, state, at=T0 + 200)
        with pytest.raises(IllegalTransition, match="extend"):
            await extend_lease(s, lease.id, ends_at=T0 + 10_000)
        with pytest.raises(IllegalTransition, match="final period"):
            await record_billing(s, lease.id, billed_until=T0 + 100, cost_delta=0.0)
        assert await get_lease(s, lease.id) == settled


async def test_ending_a_missing_lease_is_not_found(store: Store) -> None:
    async with store.session() as s:
        for call in (
            end_lease(s, "lease_nope", L.RELEASED, at=T0),
            extend_lease(s, "lease_nope", ends_at=T0),
            record_billing(s, "lease_nope", billed_until=T0, cost_delta=0.0),
        ):
            with pytest.raises(RecordNotFound):
                await call


async def test_concurrent_endings_end_a_lease_once(store: Store) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)

    async def end(state: LeaseState, at: float) -> LeaseRecord:
        async with store.session() as s:
            return await end_lease(s, lease.id, state, at=at)

    outcomes = await asyncio.gather(
        *(end(state, T0 + i) for i, state in enumerate([*ENDINGS, *ENDINGS])),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, LeaseRecord)]
    assert len(won) == 1
    assert all(isinstance(o, IllegalTransition) for o in outcomes if o not in won)
    async with store.session() as s:
        assert await get_lease(s, lease.id) == won[0]


# -- extending ------------------------------------------------------------------------------


async def test_extend_only_pushes_the_end_later(store: Store) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    async with store.session() as s:
        longer = await extend_lease(s, lease.id, ends_at=lease.ends_at + 300)
        assert longer.ends_at == lease.ends_at + 300
        for earlier in (longer.ends_at, longer.ends_at - 1, math.nan, math.inf):
            with pytest.raises(ValueError, match=r"later|finite"):
                await extend_lease(s, lease.id, ends_at=earlier)
        assert await get_lease(s, lease.id) == longer
        # billing may now run into the added time
        billed = await record_billing(s, lease.id, billed_until=lease.ends_at + 200, cost_delta=1)
        assert billed.billed_until == lease.ends_at + 200


async def test_concurrent_extensions_keep_the_latest_end(store: Store) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    targets = [lease.ends_at + 60 * i for i in range(1, 7)]

    async def extend(ends_at: float) -> float:
        async with store.session() as s:
            return (await extend_lease(s, lease.id, ends_at=ends_at)).ends_at

    await asyncio.gather(*(extend(x) for x in targets), return_exceptions=True)
    async with store.session() as s:
        assert (await get_lease(s, lease.id)).ends_at == max(targets)


# -- billing --------------------------------------------------------------------------------


async def test_billing_advances_adds_cost_and_counts_receipts(store: Store) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    async with store.session() as s:
        first = await record_billing(s, lease.id, billed_until=T0 + 60, cost_delta=0.12)
        again = await record_billing(s, lease.id, billed_until=T0 + 60, cost_delta=0.0)
        last = await record_billing(s, lease.id, billed_until=lease.ends_at, cost_delta=1.08)
    assert (first.billed_until, first.cost, first.receipts) == (T0 + 60, 0.12, 1)
    assert (again.billed_until, again.cost, again.receipts) == (T0 + 60, 0.12, 2)
    assert (last.billed_until, last.receipts, last.state) == (lease.ends_at, 3, L.ACTIVE)
    assert last.cost == pytest.approx(1.2)
    assert not last.settled


async def test_billing_never_goes_backwards_or_past_the_end(store: Store) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    async with store.session() as s:
        done = await record_billing(s, lease.id, billed_until=T0 + 100, cost_delta=0.2)
        with pytest.raises(ValueError, match="back"):
            await record_billing(s, lease.id, billed_until=T0 + 99.5, cost_delta=0.0)
        with pytest.raises(ValueError, match="past"):
            await record_billing(s, lease.id, billed_until=lease.ends_at + 0.5, cost_delta=0.0)
        for kwargs in (
            {"billed_until": T0 + 120, "cost_delta": -0.1},
            {"billed_until": T0 + 120, "cost_delta": math.nan},
            {"billed_until": math.inf, "cost_delta": 0.1},
        ):
            with pytest.raises(ValueError, match="finite"):
                await record_billing(s, lease.id, **kwargs)
        assert await get_lease(s, lease.id) == done


async def test_the_final_period_is_billed_once_and_not_past_the_ending(store: Store) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    async with store.session() as s:
        await record_billing(s, lease.id, billed_until=T0 + 60, cost_delta=0.1)
        ended = await end_lease(s, lease.id, L.RELEASED, at=T0 + 90)
        assert not ended.settled
        with pytest.raises(ValueError, match="past"):  # released at +90: nothing after it
            await record_billing(s, lease.id, billed_until=T0 + 91, cost_delta=0.1)
        final = await record_billing(s, lease.id, billed_until=T0 + 90, cost_delta=0.05)
        assert (final.billed_until, final.receipts, final.settled) == (T0 + 90, 2, True)
        assert final.cost == pytest.approx(0.15)
        with pytest.raises(IllegalTransition):
            await record_billing(s, lease.id, billed_until=T0 + 90, cost_delta=0.0)


async def test_an_expiry_noticed_late_bills_only_up_to_the_end(store: Store) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    async with store.session() as s:
        await end_lease(s, lease.id, L.EXPIRED, at=lease.ends_at + 30)
        with pytest.raises(ValueError, match="past"):
            await record_billing(s, lease.id, billed_until=lease.ends_at + 30, cost_delta=1)
        final = await record_billing(s, lease.id, billed_until=lease.ends_at, cost_delta=1.2)
    assert (final.billed_until, final.settled) == (lease.ends_at, True)


async def test_concurrent_final_billings_bill_once(store: Store) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    async with store.session() as s:
        await end_lease(s, lease.id, L.FAILED, at=T0 + 50)

    async def bill() -> LeaseRecord:
        async with store.session() as s:
            return await record_billing(s, lease.id, billed_until=T0 + 50, cost_delta=0.1)

    outcomes = await asyncio.gather(*(bill() for _ in range(6)), return_exceptions=True)
    won = [o for o in outcomes if isinstance(o, LeaseRecord)]
    assert len(won) == 1
    assert all(isinstance(o, IllegalTransition) for o in outcomes if o not in won)
    async with store.session() as s:
        stored = await get_lease(s, lease.id)
    assert (stored.receipts, stored.cost, stored.settled) == (1, 0.1, True)


async def test_concurrent_billings_lose_no_receipt(store: Store) -> None:
    acme = await _tenant(store)
    lease = await _stored(store, acme)

    async def bill(i: int) -> LeaseRecord:
        async with store.session() as s:
            return await record_billing(s, lease.id, billed_until=T0 + i, cost_delta=0.25)

    outcomes = await asyncio.gather(*(bill(i) for i in range(1, 9)), return_exceptions=True)
    ok = [o for o in outcomes if isinstance(o, LeaseRecord)]
    # A billing that lost the race to a later one is refused as going backwards, not lost.
    assert all(isinstance(o, ValueError) for o in outcomes if o not in ok)
    async with store.session() as s:
        stored = await get_lease(s, lease.id)
    assert stored.receipts == len(ok) >= 1
    assert stored.cost == pytest.approx(0.25 * len(ok))
    assert stored.billed_until == max(o.billed_until for o in ok)


_step = st.tuples(
    st.floats(min_value=-30, max_value=700, allow_nan=False),
    st.floats(min_value=0, max_value=5, allow_nan=False),
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(_step, max_size=10))
async def test_billing_is_monotone_bounded_and_sums_its_accepted_deltas(
    store: Store, steps: list[tuple[float, float]]
) -> None:
    async with store.session() as s:
        tid = (await create_tenant(s, f"t{next(_ids)}", balance=1.0, at=int(T0))).id
        lease = await insert_lease(s, _lease(tid))
        accepted: list[float] = []
        last = lease.billed_until
        for offset, delta in steps:
            until = T0 + offset
            if last <= until <= lease.ends_at:
                got = await record_billing(s, lease.id, billed_until=until, cost_delta=delta)
                accepted.append(delta)
                last = until
                assert got.billed_until == until
            else:
                with pytest.raises(ValueError):
                    await record_billing(s, lease.id, billed_until=until, cost_delta=delta)
        stored = await get_lease(s, lease.id)
    assert stored.billed_until == last <= lease.ends_at
    assert stored.receipts == len(accepted)
    assert stored.cost == pytest.approx(sum(accepted))


async def test_a_period_is_billed_once_however_many_gateways_bill_it(store: Store) -> None:
    """Two gateway replicas billing the same period: the first one's stands, the second one
    is AlreadyBilled (its receipt and charge roll back with it)."""
    acme = await _tenant(store)
    lease = await _stored(store, acme)
    start = math.floor(lease.billed_until)

    async def bill() -> object:
        try:
            async with store.session() as s:
                return await record_billing(
                    s, lease.id, billed_until=start + 60, cost_delta=0.5, period_start=start
                )
        except AlreadyBilled as exc:
            return exc

    outcomes = await asyncio.gather(bill(), bill(), bill())
    billed = [o for o in outcomes if isinstance(o, LeaseRecord)]
    assert len(billed) == 1 and sum(isinstance(o, AlreadyBilled) for o in outcomes) == 2
    async with store.session() as s:
        after = await get_lease(s, lease.id)
    assert (after.cost, after.receipts, after.billed_until) == (0.5, 1, start + 60)
