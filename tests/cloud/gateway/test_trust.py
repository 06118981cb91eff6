"""Customers are offered only workers the validator verified, never a caught cheat."""

from __future__ import annotations

import time

from byteleap.cloud.gateway.trust import VerifiedSupply
from byteleap.cloud.scheduler import WorkerOffer, WorkerState
from byteleap.store import (
    ChallengeStatus,
    NewChallenge,
    Store,
    advance_challenge,
    record_challenge,
    upsert_miner,
    upsert_workers,
)


class FixedSupply:
    def __init__(self, offers: list[WorkerOffer]) -> None:
        self._offers = offers

    async def offers(self) -> list[WorkerOffer]:
        return self._offers

    async def client(self, hotkey: str) -> object:
        raise AssertionError("not used")

    async def close(self) -> None:
        return None


def offer(miner: str, worker: str) -> WorkerOffer:
    return WorkerOffer(
        miner_hotkey=miner, worker_id=worker, state=WorkerState.IDLE, cpu_cores=1, ram_mib=1024,
        region="local", price_per_cpu_s=0.00001,
    )  # fmt: skip


async def challenge(
    store: Store, miner_id: int, worker_id: int, cid: str, status: ChallengeStatus
) -> None:
    now = int(time.time())
    async with store.session() as s:
        await record_challenge(
            s,
            NewChallenge(
                id=cid, worker_id=worker_id, miner_id=miner_id, profile="cpu-f64", n=64,
                seed="00" * 32, issued_at=now - 60, deadline_at=now,
            ),
        )  # fmt: skip
        await advance_challenge(s, cid, ChallengeStatus.COMMITTED, at=now, root="11" * 32)
        reason = None if status is ChallengeStatus.PASSED else "wrong_value"
        throughput = 1e9 if status is ChallengeStatus.PASSED else None
        await advance_challenge(
            s, cid, status, at=now, failure_reason=reason, throughput=throughput
        )


async def test_only_verified_honest_workers_are_offered(store: Store) -> None:
    async with store.session() as s:
        miner = await upsert_miner(s, "5Miner", uid=1, axon=None, at=int(time.time()))
        ids = await upsert_workers(s, miner.id, ["honest", "cheat", "new"], at=int(time.time()))
    await challenge(store, miner.id, ids["honest"], "c1", ChallengeStatus.PASSED)
    await challenge(store, miner.id, ids["cheat"], "c2", ChallengeStatus.PASSED)
    await challenge(store, miner.id, ids["cheat"], "c3", ChallengeStatus.FAILED)
    supply = VerifiedSupply(
        FixedSupply([offer("5Miner", w) for w in ("honest", "cheat", "new")]),  # type: ignore[arg-type]
        store,
        window_s=3600,
    )
    assert [o.worker_id for o in await supply.offers()] == ["honest"]
