"""A round's batched writes — a miner's whole listing, a round's challenges issued and ended at
once — leave exactly what the one-row-at-a-time functions leave, and refuse what they refuse.
On SQLite and PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

import secrets
from dataclasses import replace

import pytest

from byteleap.store import (
    ChallengeEnd,
    ChallengeStatus,
    GpuRecord,
    IllegalTransition,
    ListedWorker,
    NewChallenge,
    RecordNotFound,
    Store,
    StoreConflict,
    WorkerHardware,
    WorkerState,
    advance_challenge,
    end_challenges,
    get_challenge,
    get_miner,
    ip_history,
    list_workers,
    record_challenge,
    record_challenges,
    record_listed_workers,
    record_worker_ip,
    set_worker_hardware,
    set_worker_public_key,
    set_worker_state,
    upsert_miner,
    upsert_workers,
    worker_identities,
)

T0 = 1_700_000_000
H100 = GpuRecord(0, "H100", 81_559, "GPU-1")
RIG = WorkerHardware("EPYC", 32, 256_000, 1_000_000, (H100,))
BIGGER = WorkerHardware("EPYC", 64, 512_000, 1_000_000, (H100, GpuRecord(1, "H100", 81_559)))
KEY_A, KEY_B = "aa" * 32, "bb" * 32

# Two listings of the same five workers, the second changing some of everything.
FIRST = {
    "w1": (RIG, KEY_A, "10.0.0.1", WorkerState.IDLE),
    "w2": (RIG, KEY_A, "10.0.0.2", WorkerState.IDLE),
    "w3": (WorkerHardware(), KEY_B, None, WorkerState.LEASED),
    "w4": (RIG, KEY_B, "10.0.0.4", WorkerState.IDLE),
    "w5": (RIG, KEY_B, "10.0.0.5", WorkerState.OFFLINE),
}
SECOND = {
    "w1": (RIG, KEY_A, "10.0.0.1", WorkerState.IDLE),  # nothing changed
    "w2": (BIGGER, KEY_B, "10.0.0.9", WorkerState.BUSY),  # everything changed
    "w3": (RIG, KEY_B, "10.0.0.3", WorkerState.CHALLENGED),  # leased -> challenged: refused
    "w4": (WorkerHardware(), KEY_B, "10.0.0.4", WorkerState.LEASED),  # GPUs gone
    "w5": (RIG, KEY_A, None, WorkerState.IDLE),
}

Listing = dict[str, tuple[WorkerHardware, str, str | None, WorkerState]]


async def one_by_one(store: Store, hotkey: str, listing: Listing, at: int) -> None:
    """What the validator's listing did before it was batched."""
    async with store.session() as s:
        miner = await upsert_miner(s, hotkey, uid=None, axon=None, at=at)
        ids = await upsert_workers(s, miner.id, list(listing), at=at)
        for key, (hardware, public_key, ip, state) in listing.items():
            await set_worker_hardware(s, ids[key], hardware)
            await set_worker_public_key(s, ids[key], public_key)
            if ip:
                await record_worker_ip(s, ids[key], ip, at=at)
            try:
                await set_worker_state(s, ids[key], state, at=at)
            except IllegalTransition:
                pass


async def batched(store: Store, hotkey: str, listing: Listing, at: int) -> list[int]:
    async with store.session() as s:
        miner = await upsert_miner(s, hotkey, uid=None, axon=None, at=at)
        ids = await upsert_workers(s, miner.id, list(listing), at=at)
        return await record_listed_workers(
            s, [ListedWorker(ids[k], *v) for k, v in listing.items()], at=at
        )


async def stored(store: Store, hotkey: str) -> list[object]:
    """Everything a listing writes about the miner's workers, without row ids."""
    async with store.session() as s:
        miner = await get_miner(s, hotkey)
        assert miner is not None
        workers = await list_workers(s, miner.id)
        ids = {w.id: w.worker_key for w in workers}
        identities = await worker_identities(s, seen_since=0)
        ips = await ip_history(s, since=0)
    return [
        [(w.worker_key, w.state, w.hardware, w.first_seen_at, w.last_seen_at) for w in workers],
        sorted(
            (i.worker_id, i.public_key, i.gpu_uuids) for i in identities if i.miner_hotkey == hotkey
        ),
        sorted(
            (ids[r.worker_id], r.ip, r.first_seen_at, r.last_seen_at)
            for r in ips
            if r.worker_id in ids
        ),
    ]


async def test_a_batched_listing_leaves_what_the_one_by_one_path_leaves(store: Store) -> None:
    await one_by_one(store, "5Fone", FIRST, T0)
    assert await batched(store, "5Fbatch", FIRST, T0) == []
    assert await stored(store, "5Fbatch") == await stored(store, "5Fone")
    await one_by_one(store, "5Fone", SECOND, T0 + 240)
    refused = await batched(store, "5Fbatch", SECOND, T0 + 240)
    assert await stored(store, "5Fbatch") == await stored(store, "5Fone")
    workers, _, ips = await stored(store, "5Fbatch")
    assert [w[1] for w in workers] == [  # type: ignore[index]
        WorkerState.IDLE, WorkerState.BUSY, WorkerState.LEASED, WorkerState.LEASED,
        WorkerState.IDLE,
    ]  # fmt: skip
    assert len(refused) == 1
    assert ("w1", "10.0.0.1", T0, T0 + 240) in ips and ("w2", "10.0.0.9", T0 + 240, T0 + 240) in ips


async def test_a_listing_of_a_worker_not_stored_is_refused(store: Store) -> None:
    with pytest.raises(RecordNotFound):
        async with store.session() as s:
            await record_listed_workers(
                s, [ListedWorker(424242, RIG, KEY_A, None, WorkerState.IDLE)], at=T0
            )


async def _worker(store: Store) -> tuple[int, int]:
    async with store.session() as s:
        miner = await upsert_miner(s, "5Fminer", uid=1, axon=None, at=T0)
        ids = await upsert_workers(s, miner.id, ["w"], at=T0)
    return miner.id, ids["w"]


def _new(worker_id: int, miner_id: int) -> NewChallenge:
    return NewChallenge(
        id=secrets.token_hex(16), worker_id=worker_id, miner_id=miner_id, profile="cuda-f16",
        n=32768, seed=secrets.token_hex(32), issued_at=T0, deadline_at=T0 + 60,
        claimed_gpu="H100",
    )  # fmt: skip


ENDS = [
    ChallengeEnd("", ChallengeStatus.PASSED, root="ab" * 32, commit_s=1.5, compute_s=1.4,
                 throughput=2e15),
    ChallengeEnd("", ChallengeStatus.FAILED, failure_reason="wrong_value", root="cd" * 32,
                 commit_s=1.6, compute_s=1.5),
    ChallengeEnd("", ChallengeStatus.TIMED_OUT, failure_reason="round_deadline", root="ef" * 32,
                 commit_s=1.7, compute_s=0.2),
    ChallengeEnd("", ChallengeStatus.TIMED_OUT, failure_reason="timeout"),
    ChallengeEnd("", ChallengeStatus.ERRORED, failure_reason="busy"),
]  # fmt: skip


async def test_a_rounds_challenges_issued_and_ended_at_once_match_one_at_a_time(
    store: Store,
) -> None:
    miner_id, worker_id = await _worker(store)
    singles = [_new(worker_id, miner_id) for _ in ENDS]
    batch = [_new(worker_id, miner_id) for _ in ENDS]
    async with store.session() as s:
        for new, end in zip(singles, ENDS, strict=True):
            await record_challenge(s, new)
            if end.root is not None:
                await advance_challenge(
                    s, new.id, ChallengeStatus.COMMITTED, at=T0 + 3, root=end.root,
                    commit_s=end.commit_s, compute_s=end.compute_s,
                )  # fmt: skip
            await advance_challenge(
                s, new.id, end.status, at=T0 + 3, failure_reason=end.failure_reason,
                throughput=end.throughput,
            )  # fmt: skip
        assert await record_challenges(s, batch) == len(batch)
        issued = await get_challenge(s, batch[0].id)
        assert issued.status is ChallengeStatus.ISSUED and issued.claimed_gpu == "H100"
        await end_challenges(
            s, [replace(end, id=new.id) for new, end in zip(batch, ENDS, strict=True)], at=T0 + 3
        )
    async with store.session() as s:
        for one, many in zip(singles, batch, strict=True):
            expected = replace(await get_challenge(s, one.id), id=many.id, seed=many.seed)
            assert await get_challenge(s, many.id) == expected


async def test_ending_challenges_refuses_what_advancing_them_refuses(store: Store) -> None:
    miner_id, worker_id = await _worker(store)
    done, fresh = _new(worker_id, miner_id), _new(worker_id, miner_id)
    async with store.session() as s:
        await record_challenges(s, [done, fresh])
        await end_challenges(s, [ChallengeEnd(done.id, ChallengeStatus.ERRORED, "busy")], at=T0)
    with pytest.raises(IllegalTransition, match="terminal"):
        async with store.session() as s:
            await end_challenges(
                s,
                [
                    ChallengeEnd(fresh.id, ChallengeStatus.TIMED_OUT, "timeout"),
                    ChallengeEnd(done.id, ChallengeStatus.TIMED_OUT, "timeout"),
                ],
                at=T0,
            )
    async with store.session() as s:
        assert (await get_challenge(s, fresh.id)).status is ChallengeStatus.ISSUED  # unwritten
        with pytest.raises(ValueError, match="throughput"):
            await end_challenges(s, [ChallengeEnd(fresh.id, ChallengeStatus.PASSED)], at=T0)
        with pytest.raises(ValueError, match="failure_reason"):
            await end_challenges(s, [ChallengeEnd(fresh.id, ChallengeStatus.FAILED)], at=T0)
        with pytest.raises(RecordNotFound):
            await end_challenges(s, [ChallengeEnd("nope", ChallengeStatus.ERRORED, "x")], at=T0)
    with pytest.raises(StoreConflict):
        async with store.session() as s:
            await record_challenges(s, [fresh])
