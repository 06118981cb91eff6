"""Lease receipts in the store, on SQLite and PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest
import sqlalchemy as sa
from bittensor import sp_core
from sqlalchemy.engine import Connection

from byteleap.net.receipts import (
    LeaseReceipt,
    anonymous_lease_id,
    countersign_as_miner,
    new_receipt,
    sign_as_gateway,
    verify_receipt,
)
from byteleap.store import (
    ReceiptRecord,
    RecordNotFound,
    Store,
    StoreConflict,
    downgrade,
    get_receipt,
    open_store,
    prune_receipts,
    receipts_in_window,
    record_receipt,
    upgrade,
)

GATEWAY = sp_core.Keypair.create_from_uri("//Alice")
MINER_A = sp_core.Keypair.create_from_uri("//Bob")
MINER_B = sp_core.Keypair.create_from_uri("//Charlie")
T0 = 1_700_000_000
LEASE = anonymous_lease_id("lease-1", b"a-secret-of-16-bytes-or-more")


def _receipt(end: int, *, miner: Any = MINER_A, worker: str = "w-1", **extra: Any) -> LeaseReceipt:
    receipt = new_receipt(
        lease_id=LEASE, netuid=1, gateway_hotkey=GATEWAY.ss58_address,
        miner_hotkey=miner.ss58_address, worker_id=worker, gpu_model="NVIDIA A100",
        gpu_count=1, period_start=end - 60, period_end=end, unit_price_micro=1000,
        currency="USD", **extra,
    )  # fmt: skip
    return countersign_as_miner(sign_as_gateway(receipt, GATEWAY), miner)


def _record(receipt: LeaseReceipt) -> ReceiptRecord:
    return ReceiptRecord(**receipt.model_dump())


async def test_round_trip_keeps_a_verifiable_receipt(store: Store) -> None:
    receipt = _receipt(T0 + 60)
    async with store.session() as s:
        assert await record_receipt(s, _record(receipt), at=T0 + 61) is True
    async with store.session() as s:
        [stored] = await receipts_in_window(s, T0, T0 + 60)
    back = LeaseReceipt.model_validate(dataclasses.asdict(stored))
    assert back == receipt
    verdict = verify_receipt(
        back, netuid=1, validators={GATEWAY.ss58_address}, miners={MINER_A.ss58_address},
        now=T0 + 120, max_age_s=3600,
    )  # fmt: skip
    assert verdict.ok


async def test_recording_is_idempotent_even_when_signed_again(store: Store) -> None:
    first, resigned = _receipt(T0 + 60), _receipt(T0 + 60)
    assert first.miner_signature != resigned.miner_signature  # sr25519 is randomised
    async with store.session() as s:
        assert await record_receipt(s, _record(first), at=T0) is True
        assert await record_receipt(s, _record(first), at=T0 + 5) is False
        assert await record_receipt(s, _record(resigned), at=T0 + 9) is False
        kept = await get_receipt(s, first.receipt_id)
    assert kept == _record(first)  # the first copy's signatures stay


@pytest.mark.adversarial
async def test_a_different_receipt_under_a_stored_id_conflicts(store: Store) -> None:
    receipt = _receipt(T0 + 60)
    async with store.session() as s:
        await record_receipt(s, _record(receipt), at=T0)
    # The same lease, worker and period billed again at a higher rate: same id, other body.
    double = _receipt(T0 + 60, seconds=60).model_copy(update={"unit_price_micro": 2000})
    double = double.model_copy(update={"amount_micro": 60 * 2000})
    with pytest.raises(StoreConflict) as err:
        async with store.session() as s:
            await record_receipt(s, _record(double), at=T0 + 1)
    assert err.value.context["fields"] == ["unit_price_micro", "amount_micro"]
    async with store.session() as s:
        assert await get_receipt(s, receipt.receipt_id) == _record(receipt)


@pytest.mark.adversarial
async def test_the_schema_refuses_impossible_receipts(store: Store) -> None:
    good = _record(_receipt(T0 + 60))
    backwards = dataclasses.replace(good, receipt_id="0" * 32, period_end=good.period_start)
    with pytest.raises(StoreConflict):
        async with store.session() as s:
            await record_receipt(s, backwards, at=T0)
    negative = dataclasses.replace(good, receipt_id="1" * 32, amount_micro=-1)
    with pytest.raises(StoreConflict):
        async with store.session() as s:
            await record_receipt(s, negative, at=T0)


async def test_concurrent_recording_stores_one_copy(store: Store) -> None:
    receipt = _record(_receipt(T0 + 60))

    async def record() -> bool:
        async with store.session() as s:
            return await record_receipt(s, receipt, at=T0)

    results = await asyncio.gather(*(record() for _ in range(4)))
    assert sorted(results) == [False, False, False, True]


async def test_window_is_half_open_and_ordered(store: Store) -> None:
    receipts = [
        _receipt(T0 + 60, worker="w-2"),
        _receipt(T0 + 60, worker="w-1"),
        _receipt(T0 + 120, miner=MINER_B),
        _receipt(T0),
        _receipt(T0 + 180),
    ]
    async with store.session() as s:
        for r in receipts:
            await record_receipt(s, _record(r), at=T0 + 200)
    async with store.session() as s:
        window = await receipts_in_window(s, T0, T0 + 120)
        only_b = await receipts_in_window(s, T0, T0 + 120, miner_hotkey=MINER_B.ss58_address)
        everything = await receipts_in_window(s, 0, 10**11)
    # (since, until]: the receipt ending at T0 is out, the one ending at T0 + 120 is in.
    assert {(r.period_end, r.worker_id, r.miner_hotkey) for r in window} == {
        (T0 + 60, "w-1", MINER_A.ss58_address),
        (T0 + 60, "w-2", MINER_A.ss58_address),
        (T0 + 120, "w-1", MINER_B.ss58_address),
    }
    order = [(r.period_end, r.receipt_id) for r in window]
    assert order == sorted(order) and len(window) == 3
    assert [r.miner_hotkey for r in only_b] == [MINER_B.ss58_address]
    assert len(everything) == 5


async def test_prune_and_missing(store: Store) -> None:
    async with store.session() as s:
        for end in (T0, T0 + 60, T0 + 120):
            await record_receipt(s, _record(_receipt(end)), at=T0 + 200)
        assert await prune_receipts(s, before=T0 + 60) == 1
        assert [r.period_end for r in await receipts_in_window(s, 0, 10**11)] == [
            T0 + 60, T0 + 120,
        ]  # fmt: skip
        with pytest.raises(RecordNotFound):
            await get_receipt(s, "f" * 32)


def _tables(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names())


async def test_migration_0002_adds_and_removes_only_its_table(empty_url: str) -> None:
    async def tables() -> set[str]:
        opened = await open_store(empty_url, require_head=False)
        try:
            return await opened.run_sync(_tables, transaction=False)
        finally:
            await opened.close()

    await upgrade(empty_url, "0001")
    before = await tables()
    assert "lease_receipts" not in before
    await upgrade(empty_url, "0002")
    assert await tables() == before | {"lease_receipts"}
    assert await downgrade(empty_url, "0001") == "0001"
    assert await tables() == before
