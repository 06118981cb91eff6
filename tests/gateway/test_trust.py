"""Customers are offered only workers the validator verified, never a caught cheat."""

from __future__ import annotations

import time

import pytest

from byteleap.gateway.scheduler import (
    GpuSpec,
    NoPlacement,
    Placement,
    Requirements,
    WorkerOffer,
    WorkerState,
    place,
)
from byteleap.gateway.trust import VerifiedSupply
from byteleap.protocol.gpu_models import GPU_MODELS, challenge_flops
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
    store: Store,
    miner_id: int,
    worker_id: int,
    cid: str,
    status: ChallengeStatus,
    throughput: float = 1e9,
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
        await advance_challenge(
            s, cid, status, at=now, failure_reason=reason,
            throughput=throughput if status is ChallengeStatus.PASSED else None,
        )  # fmt: skip


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


SPEED = {m.name: challenge_flops(m) for m in GPU_MODELS}
PRICES = {"H100": 0.0008, "H200": 0.0011, "A100": 0.0004}


def gpu_offer(miner: str, worker: str, model: str, vram_mib: int) -> WorkerOffer:
    return WorkerOffer(
        miner_hotkey=miner, worker_id=worker, state=WorkerState.IDLE,
        gpus=(GpuSpec(model=model, vram_mib=vram_mib),), cpu_cores=32, ram_mib=1 << 18,
        region="local", price_per_gpu_s=PRICES,
    )  # fmt: skip


@pytest.mark.adversarial
async def test_gpus_are_offered_and_priced_as_what_their_challenges_measured(store: Store) -> None:
    async with store.session() as s:
        miner = await upsert_miner(s, "5Miner", uid=1, axon=None, at=int(time.time()))
        ids = await upsert_workers(s, miner.id, ["h100", "fake", "fake80"], at=int(time.time()))
    h100 = SPEED["H100 SXM"]
    for i, flops in enumerate((0.8 * h100, h100, 1.1 * h100)):
        await challenge(store, miner.id, ids["h100"], f"h{i}", ChallengeStatus.PASSED, flops)
    for worker in ("fake", "fake80"):
        await challenge(
            store, miner.id, ids[worker], f"{worker}0", ChallengeStatus.PASSED, SPEED["RTX 3090"]
        )
    listed = [
        gpu_offer("5Miner", "h100", "NVIDIA H100 80GB HBM3", 81559),  # NVML's name for it
        gpu_offer("5Miner", "fake", "NVIDIA H100 80GB HBM3", 24576),  # a 3090 calling itself H100
        gpu_offer("5Miner", "fake80", "NVIDIA H100 80GB HBM3", 81559),  # …with H100 memory too
    ]
    supply = VerifiedSupply(FixedSupply(listed), store, window_s=3600)  # type: ignore[arg-type]
    offers = {o.worker_id: o for o in await supply.offers()}
    assert offers["h100"].gpus == (GpuSpec(model="H100 SXM", vram_mib=81559),)
    assert offers["h100"].verified_throughput == pytest.approx(h100)  # the median pass
    assert offers["fake"].verified_throughput == pytest.approx(SPEED["RTX 3090"])
    assert [g.model for g in offers["fake"].gpus] not in (["H100 SXM"], [])
    assert offers["fake80"].gpus == ()

    placed = place(Requirements(gpu_count=1, gpu_model="H100"), offers.values())
    assert isinstance(placed, Placement) and placed.worker.worker_id == "h100"
    assert placed.price_per_s == PRICES["H100"]
    only_fakes = [offers["fake"], offers["fake80"]]
    refused = place(Requirements(gpu_count=1, gpu_model="H100"), only_fakes)
    assert isinstance(refused, NoPlacement)
    assert refused.reason_counts() == {"too_few_gpus": 1, "wrong_gpu_model": 1}
