"""Gateway leadership in the store (SQLite and PostgreSQL): one holder at a time, renewed by
it, taken over with a higher term once it lapses, handed over at once on resigning."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from byteleap.gateway.leadership import Leadership, StoreInUse, lock_sqlite_store
from byteleap.store import Store, open_store, upgrade
from byteleap.store.leadership import (
    claim,
    holder_of,
    others_load,
    report_load,
    resign,
    shared_secret,
)

T0 = 1_700_000_000.0
ROLE = "gateway-passes"


async def test_one_holder_renews_another_takes_over_once_it_lapses(store: Store) -> None:
    async with store.session() as s:
        assert await claim(s, ROLE, "a", now=T0, ttl_s=10) == 1
        assert await claim(s, ROLE, "b", now=T0 + 5, ttl_s=10) is None
        assert await claim(s, ROLE, "a", now=T0 + 8, ttl_s=10) == 1  # renewed to T0 + 18
        assert await claim(s, ROLE, "b", now=T0 + 17, ttl_s=10) is None
        assert await claim(s, ROLE, "b", now=T0 + 19, ttl_s=10) == 2
        assert await claim(s, ROLE, "a", now=T0 + 20, ttl_s=10) is None
        assert await holder_of(s, ROLE, now=T0 + 20) == "b"
        await resign(s, ROLE, "b")
        assert await holder_of(s, ROLE, now=T0 + 20) is None
        assert await claim(s, ROLE, "a", now=T0 + 20, ttl_s=10) == 3


async def test_concurrent_claims_leave_exactly_one_holder(store: Store) -> None:
    async def one(name: str) -> int | None:
        async with store.session() as s:
            return await claim(s, ROLE, name, now=T0, ttl_s=10)

    terms = await asyncio.gather(*(one(f"r{i}") for i in range(6)))
    assert sum(t is not None for t in terms) == 1


async def test_a_replica_stops_counting_itself_the_holder_before_its_claim_lapses(
    store: Store,
) -> None:
    now = [T0]
    a = Leadership(store, holder="a", ttl_s=8, clock=lambda: now[0])
    b = Leadership(store, holder="b", ttl_s=8, clock=lambda: now[0])
    assert await a.renew() and not await b.renew()
    now[0] = T0 + 5.9  # a (dead) renews no more: it already counts itself out at 6
    assert a.held
    now[0] = T0 + 6.1
    assert not a.held and not await b.renew()  # the claim itself lasts until 8
    now[0] = T0 + 8.1
    assert await b.renew() and b.term == 2
    await b.resign()
    assert await a.renew() and a.term == 3


async def test_a_second_gateway_on_one_sqlite_store_is_refused(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await upgrade(url)
    first, second = await open_store(url), await open_store(url)
    try:
        held = lock_sqlite_store(first)
        assert held is not None
        with pytest.raises(StoreInUse, match="PostgreSQL"):
            lock_sqlite_store(second)
        held.close()
        again = lock_sqlite_store(second)  # once the first one is gone
        assert again is not None
        again.close()
    finally:
        await first.close()
        await second.close()


async def test_replicas_share_the_first_replicas_secret(store: Store) -> None:
    """Lease ids on the wire are keyed by it: replicas with different keys named one lease
    differently, and the miner refused the other replica's probes (a lease failed)."""
    async with store.session() as s:
        first = await shared_secret(s, "lease-ids", b"a" * 32)
    async with store.session() as s:
        second = await shared_secret(s, "lease-ids", b"b" * 32)
    assert first == second == b"a" * 32


async def test_each_gateway_reports_its_load_and_reads_the_others_fresh_ones(store: Store) -> None:
    async with store.session() as s:
        await report_load(s, "svc_a", "g1", in_flight=2.0, latency_p90_ms=None, at=T0)
        await report_load(s, "svc_a", "g1", in_flight=3.0, latency_p90_ms=40.0, at=T0 + 1)
        await report_load(s, "svc_a", "g2", in_flight=1.5, latency_p90_ms=90.0, at=T0 + 1)
        await report_load(s, "svc_a", "g3", in_flight=9.0, latency_p90_ms=None, at=T0 - 60)
        await report_load(s, "svc_b", "g2", in_flight=7.0, latency_p90_ms=None, at=T0 + 1)
        # g1's last report replaced its first; g3's is stale; svc_b is another service.
        assert sorted(await others_load(s, "svc_a", "g2", since=T0 - 5)) == [(3.0, 40.0)]
        assert await others_load(s, "svc_a", "g1", since=T0 - 5) == [(1.5, 90.0)]
