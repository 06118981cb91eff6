"""Worker keys and identities, lease starts and first passes: the reads behind the lease and
identity checks in scoring, the same on SQLite and PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

import hashlib

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from byteleap.protocol.identity import WorkerIdentity, duplicated_workers
from byteleap.store import (
    ChallengeRecord,
    ChallengeStatus,
    GpuRecord,
    RecordNotFound,
    Store,
    WorkerHardware,
    bulk_insert_challenges,
    downgrade,
    first_passes,
    lease_starts,
    open_store,
    set_worker_hardware,
    set_worker_public_key,
    upgrade,
    upsert_miner,
    upsert_workers,
    worker_identities,
)
from byteleap.store.receipts import ReceiptRecord, record_receipt

T0 = 1_700_000_000
KEY_A = "ab" * 32
KEY_B = "cd" * 32


async def _workers(store: Store, hotkey: str, keys: list[str], *, at: int = T0) -> dict[str, int]:
    async with store.session() as s:
        miner = await upsert_miner(s, hotkey, uid=None, axon=None, at=at)
        return await upsert_workers(s, miner.id, keys, at=at)


async def test_public_keys_and_gpus_make_the_identities_of_recent_workers(store: Store) -> None:
    a = await _workers(store, "5Fa", ["w1", "w2", "old"])
    b = await _workers(store, "5Fb", ["w1"], at=T0 + 100)
    async with store.session() as s:
        await set_worker_public_key(s, a["w1"], KEY_A)
        await set_worker_public_key(s, a["w1"], KEY_B)  # the latest listing wins
        await set_worker_public_key(s, b["w1"], KEY_B)
        gpus = (GpuRecord(1, "H100", 80, "GPU-2"), GpuRecord(0, "H100", 80, "GPU-1"))
        await set_worker_hardware(s, a["w1"], WorkerHardware(gpus=gpus))
        await set_worker_hardware(s, a["w2"], WorkerHardware(gpus=(GpuRecord(0, "cpu", 0),)))
    await _workers(store, "5Fa", ["w1", "w2"], at=T0 + 50)  # listed again; "old" is not
    async with store.session() as s:
        recent = await worker_identities(s, seen_since=T0 + 50)
        everyone = await worker_identities(s, seen_since=0)
    assert recent == [
        WorkerIdentity("5Fa", "w1", KEY_B, ("GPU-1", "GPU-2")),
        WorkerIdentity("5Fa", "w2", "", ()),  # no key recorded yet, no GPU uuid reported
        WorkerIdentity("5Fb", "w1", KEY_B, ()),
    ]
    assert [(i.miner_hotkey, i.worker_id) for i in everyone] == [
        ("5Fa", "old"), ("5Fa", "w1"), ("5Fa", "w2"), ("5Fb", "w1"),
    ]  # fmt: skip
    assert duplicated_workers(recent) == {("5Fa", "w1"): "shared_key", ("5Fb", "w1"): "shared_key"}


async def test_setting_the_key_of_a_missing_worker_is_not_found(store: Store) -> None:
    async with store.session() as s:
        with pytest.raises(RecordNotFound):
            await set_worker_public_key(s, 999, KEY_A)


def _receipt(lease: str, worker: str, start: int, *, miner: str = "5Fm") -> ReceiptRecord:
    return ReceiptRecord(
        version=1, receipt_id=hashlib.md5(f"{lease}/{worker}/{start}".encode()).hexdigest(),
        lease_id=lease, netuid=1, gateway_hotkey="5Fg", miner_hotkey=miner, worker_id=worker,
        gpu_model="H100", gpu_count=1, period_start=start, period_end=start + 60, seconds=60,
        unit_price_micro=1, amount_micro=60, currency="TAO", gateway_signature="00" * 64,
        miner_signature="00" * 64,
    )  # fmt: skip


async def test_a_lease_starts_at_its_earliest_stored_period(store: Store) -> None:
    receipts = [
        *(_receipt("a" * 32, "w1", T0 + 60 * i) for i in range(10)),  # one long lease
        _receipt("b" * 32, "w1", T0 + 500),  # another lease, same worker
        _receipt("c" * 32, "w2", T0),  # ended before the window
    ]
    async with store.session() as s:
        for r in receipts:
            await record_receipt(s, r, at=T0 + 1000)
        starts = await lease_starts(s, since=T0 + 540, until=T0 + 600)
    assert starts == {("a" * 32, "5Fm", "w1"): T0, ("b" * 32, "5Fm", "w1"): T0 + 500}


def _pass(wid: int, miner_id: int, at: int, status: ChallengeStatus) -> ChallengeRecord:
    ok = status is ChallengeStatus.PASSED
    return ChallengeRecord(
        id=f"c{wid}-{at}", worker_id=wid, miner_id=miner_id, profile="cpu-f64", n=512,
        seed="00" * 32, status=status, failure_reason=None if ok else "timeout",
        claimed_gpu=None, root=None, issued_at=at, deadline_at=at + 60, finished_at=at + 5,
        rtt_s=None, commit_s=None, compute_s=None, throughput=1.0 if ok else None,
    )  # fmt: skip


async def test_first_pass_at_or_after_each_time(store: Store) -> None:
    ids = await _workers(store, "5Fm", ["w1", "w2"])
    async with store.session() as s:
        miner_id = (await upsert_miner(s, "5Fm", uid=None, axon=None, at=T0)).id
        await bulk_insert_challenges(
            s,
            [
                _pass(ids["w1"], miner_id, T0 + 100, ChallengeStatus.PASSED),
                _pass(ids["w1"], miner_id, T0 + 200, ChallengeStatus.TIMED_OUT),
                _pass(ids["w1"], miner_id, T0 + 300, ChallengeStatus.PASSED),
                _pass(ids["w2"], miner_id, T0 + 150, ChallengeStatus.FAILED),
            ],
        )
        wanted = [(ids["w1"], T0), (ids["w1"], T0 + 100), (ids["w1"], T0 + 101)]
        wanted += [(ids["w1"], T0 + 301), (ids["w2"], T0), (999, T0)]
        found = await first_passes(s, wanted)
        many = await first_passes(s, [(ids["w1"], T0 + i) for i in range(450)])
        none = await first_passes(s, [])
    assert found == {
        (ids["w1"], T0): T0 + 100,
        (ids["w1"], T0 + 100): T0 + 100,
        (ids["w1"], T0 + 101): T0 + 300,  # the timeout in between does not count
    }
    assert len(many) == 301 and many[(ids["w1"], T0 + 250)] == T0 + 300  # past one SQL chunk
    assert none == {}


def _columns(conn: Connection) -> set[str]:
    return {c["name"] for c in sa.inspect(conn).get_columns("workers")}


async def test_the_key_column_migrates_up_and_down_keeping_workers(empty_url: str) -> None:
    await upgrade(empty_url, "0009")
    store = await open_store(empty_url, require_head=False)
    try:
        await _workers(store, "5Fm", ["w1"])
        assert "public_key" not in await store.run_sync(_columns, transaction=False)
    finally:
        await store.close()
    await upgrade(empty_url)
    store = await open_store(empty_url)
    try:
        async with store.session() as s:
            assert await worker_identities(s, seen_since=0) == [WorkerIdentity("5Fm", "w1", "", ())]
    finally:
        await store.close()
    await downgrade(empty_url, "0009")
    store = await open_store(empty_url, require_head=False)
    try:
        assert "public_key" not in await store.run_sync(_columns, transaction=False)
        async with store.session() as s:
            count = await s.scalar(sa.text("SELECT count(*) FROM workers"))
        assert count == 1
    finally:
        await store.close()
