"""Repository behaviour, the same on SQLite and PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from byteleap.store import (
    ChallengeRecord,
    ChallengeStatus,
    GpuRecord,
    IllegalTransition,
    NewChallenge,
    RecordNotFound,
    SpanRow,
    Store,
    StoreConflict,
    WorkerHardware,
    WorkerIpRecord,
    WorkerState,
    abandon_open_challenges,
    advance_challenge,
    bulk_insert_challenges,
    bulk_insert_spans,
    bulk_insert_worker_ips,
    chain_events,
    challenge_rows,
    challenge_summaries,
    get_challenge,
    get_worker,
    ip_history,
    latest_weights,
    list_miners,
    list_workers,
    mark_online,
    mark_weights_submitted,
    online_buckets,
    open_challenges,
    open_store,
    prune_availability,
    record_chain_event,
    record_challenge,
    record_weights,
    record_worker_ip,
    set_worker_hardware,
    set_worker_state,
    set_worker_states,
    spans_from_buckets,
    spans_in_window,
    upsert_miner,
    upsert_workers,
    weights_history,
)

T0 = 1_700_000_000


async def _miner_with_workers(store: Store, keys: list[str]) -> tuple[int, dict[str, int]]:
    async with store.session() as s:
        miner = await upsert_miner(s, "5Fminer", uid=3, axon="127.0.0.1:8091", at=T0)
        return miner.id, await upsert_workers(s, miner.id, keys, at=T0)


def _challenge(worker_id: int, miner_id: int, at: int = T0) -> NewChallenge:
    return NewChallenge(
        id=secrets.token_hex(16), worker_id=worker_id, miner_id=miner_id, profile="cpu-f64",
        n=1024, seed=secrets.token_hex(32), issued_at=at, deadline_at=at + 60,
    )  # fmt: skip


async def test_miner_upsert_refreshes_in_place(store: Store) -> None:
    async with store.session() as s:
        first = await upsert_miner(s, "5Fa", uid=1, axon=None, at=T0)
        again = await upsert_miner(s, "5Fa", uid=7, axon="1.2.3.4:1", at=T0 + 10)
    assert again.id == first.id
    assert (again.uid, again.axon, again.first_seen_at, again.last_seen_at) == (
        7, "1.2.3.4:1", T0, T0 + 10,
    )  # fmt: skip
    async with store.session() as s:
        assert [m.hotkey for m in await list_miners(s)] == ["5Fa"]


async def test_workers_upsert_hardware_and_states(store: Store) -> None:
    miner_id, ids = await _miner_with_workers(store, ["w1", "w2"])
    async with store.session() as s:
        again = await upsert_workers(s, miner_id, ["w2", "w3"], at=T0 + 5)
        assert again["w2"] == ids["w2"]
        assert again["w3"] not in ids.values()
        hw = WorkerHardware(
            "EPYC", 32, 256_000, 1_000_000, (GpuRecord(0, "H100", 81_559, "GPU-1"),)
        )
        await set_worker_hardware(s, ids["w1"], hw)
        await set_worker_hardware(s, ids["w1"], hw)  # replaces, does not duplicate GPUs
        await set_worker_state(s, ids["w1"], WorkerState.CHALLENGED, at=T0 + 6)
    async with store.session() as s:
        w1 = await get_worker(s, ids["w1"])
        assert w1.hardware == hw
        assert w1.state is WorkerState.CHALLENGED
        assert [w.worker_key for w in await list_workers(s, miner_id)] == ["w1", "w2", "w3"]
        assert (await get_worker(s, ids["w2"])).last_seen_at == T0 + 5


async def test_illegal_worker_move_changes_nothing(store: Store) -> None:
    _, ids = await _miner_with_workers(store, ["a", "b"])
    async with store.session() as s:
        await set_worker_state(s, ids["b"], WorkerState.LEASED, at=T0)
    with pytest.raises(IllegalTransition, match="leased to challenged"):
        async with store.session() as s:
            await set_worker_states(
                s, {ids["a"]: WorkerState.CHALLENGED, ids["b"]: WorkerState.CHALLENGED}, at=T0
            )
    async with store.session() as s:
        assert (await get_worker(s, ids["a"])).state is WorkerState.IDLE
        with pytest.raises(RecordNotFound):
            await get_worker(s, 999_999)


async def test_challenge_lifecycle_and_terminal_is_final(store: Store) -> None:
    miner_id, ids = await _miner_with_workers(store, ["w"])
    new = _challenge(ids["w"], miner_id)
    async with store.session() as s:
        rec = await record_challenge(s, new)
        assert rec.status is ChallengeStatus.ISSUED and rec.seed == new.seed
        await advance_challenge(
            s, new.id, ChallengeStatus.COMMITTED, at=T0 + 2, root="ab" * 32, rtt_s=0.01,
            commit_s=1.5,
        )  # fmt: skip
        done = await advance_challenge(
            s, new.id, ChallengeStatus.PASSED, at=T0 + 3, compute_s=1.49, throughput=1.4e9
        )
    assert (done.status, done.finished_at, done.root, done.rtt_s) == (
        ChallengeStatus.PASSED, T0 + 3, "ab" * 32, 0.01,
    )  # fmt: skip
    for target in ChallengeStatus:
        with pytest.raises(IllegalTransition, match="terminal"):
            async with store.session() as s:
                await advance_challenge(s, new.id, target, at=T0 + 9, failure_reason="late")
    async with store.session() as s:
        assert await get_challenge(s, new.id) == done


async def test_failure_needs_a_reason_and_duplicate_id_conflicts(store: Store) -> None:
    miner_id, ids = await _miner_with_workers(store, ["w"])
    new = _challenge(ids["w"], miner_id)
    async with store.session() as s:
        await record_challenge(s, new)
        with pytest.raises(ValueError, match="failure_reason"):
            await advance_challenge(s, new.id, ChallengeStatus.FAILED, at=T0)
    with pytest.raises(StoreConflict):
        async with store.session() as s:
            await record_challenge(s, new)
    with pytest.raises(StoreConflict):  # the worker must exist
        async with store.session() as s:
            await record_challenge(s, _challenge(424242, miner_id))


async def test_restart_finds_open_challenges_and_abandons_them(store: Store) -> None:
    miner_id, ids = await _miner_with_workers(store, ["w"])
    a, b, c = (_challenge(ids["w"], miner_id, T0 + i) for i in range(3))
    async with store.session() as s:
        for new in (a, b, c):
            await record_challenge(s, new)
        await advance_challenge(s, b.id, ChallengeStatus.COMMITTED, at=T0 + 5, commit_s=1.0)
        await advance_challenge(
            s, c.id, ChallengeStatus.TIMED_OUT, at=T0 + 5, failure_reason="late"
        )
    await store.close()
    reopened = await open_store(store.url.render_as_string(hide_password=False))
    try:
        async with reopened.session() as s:
            assert [r.id for r in await open_challenges(s)] == [a.id, b.id]
            assert await abandon_open_challenges(s, at=T0 + 100) == 2
        async with reopened.session() as s:
            assert await open_challenges(s) == []
            assert (await get_challenge(s, a.id)).status is ChallengeStatus.ABANDONED
            assert (await get_challenge(s, c.id)).failure_reason == "late"
    finally:
        await reopened.close()


async def test_challenge_rows_window_and_bulk_insert(store: Store) -> None:
    miner_id, ids = await _miner_with_workers(store, ["w"])
    records = [
        ChallengeRecord(
            id=f"c{i}", worker_id=ids["w"], miner_id=miner_id, profile="cpu-f64", n=512,
            seed="00" * 32, status=ChallengeStatus.PASSED if i % 3 else ChallengeStatus.FAILED,
            failure_reason=None if i % 3 else "mismatch", claimed_gpu=None, root=None,
            issued_at=T0 + 240 * i, deadline_at=T0 + 240 * i + 60, finished_at=T0 + 240 * i + 5,
            rtt_s=0.01, commit_s=2.0, compute_s=1.99, throughput=float(i),
        )
        for i in range(10)
    ]  # fmt: skip
    async with store.session() as s:
        assert await bulk_insert_challenges(s, records) == 10
    async with store.session() as s:
        rows = await challenge_rows(s, since=T0 + 240, until=T0 + 240 * 4)
    assert sorted(r.throughput for r in rows) == [1.0, 2.0, 3.0]
    assert {r.status for r in rows} == {ChallengeStatus.PASSED, ChallengeStatus.FAILED}
    assert all(isinstance(r.status, ChallengeStatus) for r in rows)


async def test_availability_runs_extend_and_count(store: Store) -> None:
    _, ids = await _miner_with_workers(store, ["a", "b"])
    a, b = ids["a"], ids["b"]
    async with store.session() as s:
        for bucket in (10, 11, 12, 12, 15):
            await mark_online(s, [a], bucket)
        await mark_online(s, [b], 11)
        await mark_online(s, [a, b], 11)  # already covered: no change
    async with store.session() as s:
        spans = await spans_in_window(s, 0, 100)
        assert spans == [SpanRow(a, 10, 13), SpanRow(a, 15, 16), SpanRow(b, 11, 12)]
        assert await online_buckets(s, 0, 100) == {a: 4, b: 1}
        assert await online_buckets(s, 11, 16) == {a: 3, b: 1}  # clipped at both ends
        assert await spans_in_window(s, 12, 15) == [SpanRow(a, 12, 13)]
        assert await prune_availability(s, 13) == 2
        assert await online_buckets(s, 0, 100) == {a: 1}


async def test_bulk_spans_match_marking_bucket_by_bucket(store: Store) -> None:
    _, ids = await _miner_with_workers(store, ["a", "b"])
    buckets = [1, 2, 3, 7, 9, 10]
    async with store.session() as s:
        await bulk_insert_spans(s, spans_from_buckets(ids["a"], buckets))
        for bucket in reversed(buckets):  # out of order on purpose
            await mark_online(s, [ids["b"]], bucket)
    async with store.session() as s:
        counts = await online_buckets(s, 0, 20)
    assert counts == {ids["a"]: 6, ids["b"]: 6}


async def test_ip_history_counts_changes(store: Store) -> None:
    _, ids = await _miner_with_workers(store, ["w", "v"])
    w = ids["w"]
    async with store.session() as s:
        assert await record_worker_ip(s, w, "10.0.0.1", at=T0) is False  # first sighting
        assert await record_worker_ip(s, w, "10.0.0.1", at=T0 + 60) is False
        assert await record_worker_ip(s, w, "10.0.0.2", at=T0 + 120) is True
        await bulk_insert_worker_ips(s, [WorkerIpRecord(ids["v"], "::1", T0 - 500, T0 - 400)])
    async with store.session() as s:
        assert await ip_history(s, since=T0) == [
            WorkerIpRecord(w, "10.0.0.1", T0, T0 + 60),
            WorkerIpRecord(w, "10.0.0.2", T0 + 120, T0 + 120),
        ]
        assert len(await ip_history(s, since=T0 - 1000, until=T0 + 30)) == 2


async def test_weights_history_and_chain_events(store: Store) -> None:
    async with store.session() as s:
        first = await record_weights(
            s, netuid=1, version_key=7, weights={0: 0.25, 3: 0.75}, computed_at=T0
        )
        await mark_weights_submitted(s, first, block=105, accepted=True)
        await record_weights(s, netuid=1, version_key=7, weights={3: 1.0}, computed_at=T0 + 420)
        await record_chain_event(s, "weights_set", at=T0, block=105, payload={"uids": [0, 3]})
        await record_chain_event(s, "registered", at=T0 + 1, hotkey="5Fx", uid=4)
        with pytest.raises(RecordNotFound):
            await mark_weights_submitted(s, 9999, block=1, accepted=False)
    async with store.session() as s:
        history = await weights_history(s)
        accepted = await latest_weights(s, accepted_only=True)
        events = await chain_events(s)
        registered = await chain_events(s, kind="registered")
    assert [h.weights for h in history] == [{3: 1.0}, {0: 0.25, 3: 0.75}]
    assert history[0].accepted is None
    assert accepted is not None and (accepted.block, accepted.version_key) == (105, 7)
    assert [(e.kind, e.payload) for e in events] == [
        ("weights_set", {"uids": [0, 3]}), ("registered", {}),
    ]  # fmt: skip
    assert [(e.hotkey, e.uid) for e in registered] == [("5Fx", 4)]


async def test_a_failed_session_rolls_back(store: Store) -> None:
    with pytest.raises(RuntimeError):
        async with store.session() as s:
            await upsert_miner(s, "5Fgone", uid=None, axon=None, at=T0)
            raise RuntimeError("caller failed")
    async with store.session() as s:
        assert await list_miners(s) == []


async def test_challenge_summaries_aggregate_per_worker(store: Store) -> None:
    miner_id, ids = await _miner_with_workers(store, ["a", "b"])
    plan = {  # worker → (status, throughput, issued offset)
        "a": [
            ("passed", 3.0, 0),
            ("passed", 1.0, 240),
            ("failed", None, 480),
            ("passed", 2.0, 720),
        ],
        "b": [("timed_out", None, 0), ("errored", None, 240)],
    }
    records = [
        ChallengeRecord(
            id=f"{key}{i}", worker_id=ids[key], miner_id=miner_id, profile="cpu-f64", n=64,
            seed="00" * 32, status=ChallengeStatus(st), failure_reason=None if tp else "x",
            claimed_gpu=None, root=None, issued_at=T0 + off, deadline_at=T0 + off + 60,
            finished_at=None, rtt_s=None, commit_s=None, compute_s=None, throughput=tp,
        )
        for key, items in plan.items()
        for i, (st, tp, off) in enumerate(items)
    ]  # fmt: skip
    records.append(replace(records[0], id="old", issued_at=T0 - 10_000, throughput=99.0))
    async with store.session() as s:
        await bulk_insert_challenges(s, records)
        summaries = await challenge_summaries(s, since=T0, until=T0 + 10_000)
    by_worker = {x.worker_id: x for x in summaries}
    a, b = by_worker[ids["a"]], by_worker[ids["b"]]
    assert a.throughputs == (1.0, 2.0, 3.0)  # sorted, the out-of-window 99.0 left out
    assert a.last_failed_at == T0 + 480
    assert a.counts[ChallengeStatus.PASSED] == 3 and a.counts[ChallengeStatus.FAILED] == 1
    assert b.throughputs == () and b.last_failed_at is None
    assert (b.counts[ChallengeStatus.TIMED_OUT], b.counts[ChallengeStatus.ERRORED]) == (1, 1)
    assert sum(b.counts.values()) == 2 and a.miner_id == miner_id
