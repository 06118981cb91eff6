"""Lease receipts in the store move lease scores: only the ones that verify, for workers a
passed challenge vouches for, whose identity is their own."""

from __future__ import annotations

import time

import pytest
from bittensor import sp_core

from byteleap.chain.port import Metagraph, NeuronInfo
from byteleap.net.receipts import (
    anonymous_lease_id,
    countersign_as_miner,
    new_receipt,
    sign_as_gateway,
)
from byteleap.scoring import ScoringParams
from byteleap.store import (
    ChallengeRecord,
    ChallengeStatus,
    GpuRecord,
    Store,
    WorkerHardware,
    bucket_of,
    bulk_insert_challenges,
    mark_online,
    set_worker_hardware,
    set_worker_public_key,
    upsert_miner,
    upsert_workers,
)
from byteleap.store.receipts import ReceiptRecord, record_receipt
from byteleap.validator.scores import compute_scores

WORKER = "w-0000000000000001"


def key() -> sp_core.Keypair:
    return sp_core.Keypair.create_from_mnemonic(sp_core.Keypair.generate_mnemonic())


def neuron(uid: int, keypair: sp_core.Keypair, *, permit: bool = False) -> NeuronInfo:
    return NeuronInfo(
        uid=uid,
        hotkey=keypair.ss58_address,
        coldkey=keypair.ss58_address,
        stake=1000.0 if permit else 0.0,
        validator_permit=permit,
    )


def receipt(  # type: ignore[no-untyped-def]
    gateway: sp_core.Keypair,
    miner: sp_core.Keypair,
    *,
    start: int,
    seconds: int,
    worker: str = WORKER,
):
    unsigned = new_receipt(
        lease_id=anonymous_lease_id("lease-" + miner.ss58_address, b"gateway-secret-0123"),
        netuid=1,
        gateway_hotkey=gateway.ss58_address,
        miner_hotkey=miner.ss58_address,
        worker_id=worker,
        gpu_model="H100",
        gpu_count=1,
        period_start=start,
        period_end=start + seconds,
        unit_price_micro=800,
        currency="TAO",
    )
    return countersign_as_miner(sign_as_gateway(unsigned, gateway), miner)


async def seen(
    store: Store,
    miner: sp_core.Keypair,
    *,
    now: int,
    passed_at: int | None,
    worker: str = WORKER,
    throughput: float = 1e12,
) -> int:
    """The worker listed and online now, with one passed challenge at ``passed_at``."""
    async with store.session() as s:
        m = await upsert_miner(s, miner.ss58_address, uid=None, axon=None, at=now)
        wid = (await upsert_workers(s, m.id, [worker], at=now))[worker]
        await mark_online(s, [wid], bucket_of(now))
        if passed_at is not None:
            record = ChallengeRecord(
                id=f"c-{wid}", worker_id=wid, miner_id=m.id, profile="cpu-f64", n=512,
                seed="00" * 32, status=ChallengeStatus.PASSED, failure_reason=None,
                claimed_gpu=None, root=None, issued_at=passed_at, deadline_at=passed_at + 60,
                finished_at=passed_at + 5, rtt_s=0.01, commit_s=1.0, compute_s=1.0,
                throughput=throughput,
            )  # fmt: skip
            await bulk_insert_challenges(s, [record])
    return wid


async def record(store: Store, receipts: list, *, now: int) -> None:  # type: ignore[type-arg]
    async with store.session() as s:
        for r in receipts:
            await record_receipt(s, ReceiptRecord(**r.model_dump()), at=now)


@pytest.mark.adversarial
async def test_verified_receipts_set_lease_scores_and_forged_ones_do_not(store: Store) -> None:
    validator, outsider, busy, idle, cheat = key(), key(), key(), key(), key()
    stale, ghost = key(), key()
    metagraph = Metagraph(
        netuid=1,
        block=100,
        neurons=[
            neuron(0, validator, permit=True),
            neuron(1, outsider),
            neuron(2, busy),
            neuron(3, idle),
            neuron(4, cheat),
            neuron(5, stale),
            neuron(6, ghost),
        ],
    )
    now = int(time.time())
    window = ScoringParams().lease_challenge_window_min * 60
    # busy's lease began at now − 1200, 300 s after its worker passed; idle's likewise.
    await seen(store, busy, now=now, passed_at=now - 1500)
    await seen(store, idle, now=now, passed_at=now - 900)
    # stale passed just over the window before its lease began; ghost's worker never did.
    await seen(store, stale, now=now, passed_at=int(now - 600 - window - 1))
    await seen(store, ghost, now=now, passed_at=None)
    genuine = [
        receipt(validator, busy, start=now - 1200, seconds=600),
        receipt(validator, busy, start=now - 600, seconds=600),
        receipt(validator, idle, start=now - 600, seconds=300),
        receipt(validator, stale, start=now - 600, seconds=600),
        receipt(validator, ghost, start=now - 600, seconds=600),
    ]
    # A "gateway" without a validator permit vouching for a friendly miner.
    forged = receipt(outsider, cheat, start=now - 600, seconds=600)
    await record(store, [*genuine, forged], now=now)
    result = await compute_scores(
        store, metagraph, now=now, params=ScoringParams(), exclude={validator.ss58_address}
    )
    board = result.board
    assert board.lease_active is True
    assert board.lease_revenue == pytest.approx(0.96 + 0.24)
    assert board.lease_share == pytest.approx(0.7)  # min(0.7, 1.2 / V) with V = 1
    assert board.miner(busy.ss58_address).lease == pytest.approx(0.8)
    assert board.miner(idle.ss58_address).lease == pytest.approx(0.2)
    for m in (cheat, stale, ghost):
        assert board.miner(m.ss58_address).lease == 0.0
    assert board.miner(stale.ss58_address).lease_rejected == pytest.approx(0.48)
    assert board.miner(ghost.ss58_address).lease_rejected == pytest.approx(0.48)
    # busy, idle and stale did the same verified work: a third of the 30% challenge share each.
    expected = {2: 0.7 * 0.8 + 0.1, 3: 0.7 * 0.2 + 0.1, 5: 0.1}
    assert result.weights == {uid: pytest.approx(w) for uid, w in expected.items()}


async def test_a_lease_that_began_long_ago_is_vouched_for_by_the_pass_before_it(
    store: Store,
) -> None:
    """A leased worker is not challenged: hours into a lease, the pass before it still counts."""
    validator, miner = key(), key()
    metagraph = Metagraph(
        netuid=1, block=1, neurons=[neuron(0, validator, permit=True), neuron(1, miner)]
    )
    now = int(time.time())
    await seen(store, miner, now=now, passed_at=now - 5 * 3600 - 120)
    # Five hours of back-to-back billed periods; the last three hours are in the lease window.
    periods = [
        receipt(validator, miner, start=now - 5 * 3600 + 600 * i, seconds=600) for i in range(30)
    ]
    await record(store, periods, now=now)
    result = await compute_scores(
        store, metagraph, now=now, params=ScoringParams(), exclude={validator.ss58_address}
    )
    assert result.board.lease_revenue == pytest.approx(18 * 0.48)
    assert result.board.miner(miner.ss58_address).lease_rejected == 0.0


@pytest.mark.adversarial
@pytest.mark.parametrize("shared", ["key", "gpu"])
async def test_one_box_listed_under_two_hotkeys_scores_nothing(store: Store, shared: str) -> None:
    validator, first, second, honest = key(), key(), key(), key()
    metagraph = Metagraph(
        netuid=1,
        block=1,
        neurons=[neuron(0, validator, permit=True)]
        + [neuron(i + 1, k) for i, k in enumerate((first, second, honest))],
    )
    now = int(time.time())
    ids = {}
    for i, miner in enumerate((first, second, honest)):
        # An H100's throughput, so no worker's passes refute the GPU it claims below.
        ids[i] = await seen(store, miner, now=now, passed_at=now - 900, throughput=5e14)
    async with store.session() as s:
        for i, wid in ids.items():
            same = i < 2
            await set_worker_public_key(s, wid, f"{'aa' if same and shared == 'key' else i:0>64}")
            uuid = "GPU-shared" if same and shared == "gpu" else f"GPU-{i}"
            await set_worker_hardware(
                s, wid, WorkerHardware(gpus=(GpuRecord(0, "H100", 81_559, uuid),))
            )
    await record(
        store,
        [receipt(validator, m, start=now - 600, seconds=600) for m in (first, honest)],
        now=now,
    )
    result = await compute_scores(
        store, metagraph, now=now, params=ScoringParams(), exclude={validator.ss58_address}
    )
    flags = {w.miner_hotkey: w.flag for w in result.board.workers}
    reason = "shared_key" if shared == "key" else "shared_gpu"
    assert flags == {
        first.ss58_address: reason,
        second.ss58_address: reason,
        honest.ss58_address: None,
    }
    assert result.board.miner(first.ss58_address).lease_rejected == pytest.approx(0.48)
    assert result.board.lease_revenue == pytest.approx(0.48)  # honest's alone
    assert result.weights == {3: pytest.approx(1.0)}


async def test_a_receipt_stops_counting_when_its_gateway_loses_the_permit(store: Store) -> None:
    validator, miner = key(), key()
    now = int(time.time())
    async with store.session() as s:
        r = receipt(validator, miner, start=now - 600, seconds=600)
        await record_receipt(s, ReceiptRecord(**r.model_dump()), at=now)
    demoted = Metagraph(
        netuid=1, block=1, neurons=[neuron(0, validator, permit=False), neuron(1, miner)]
    )
    result = await compute_scores(store, demoted, now=now, params=ScoringParams())
    assert result.board.lease_active is False and result.weights == {}


@pytest.mark.adversarial
async def test_a_gpu_whose_passes_refute_its_claimed_model_scores_nothing(store: Store) -> None:
    validator, spoof, honest = key(), key(), key()
    metagraph = Metagraph(
        netuid=1,
        block=1,
        neurons=[neuron(0, validator, permit=True), neuron(1, spoof), neuron(2, honest)],
    )
    now = int(time.time())
    # "H100" at a T4's speed beside a real H100.
    slow = await seen(store, spoof, now=now, passed_at=now - 900, throughput=2e13)
    fast = await seen(store, honest, now=now, passed_at=now - 900, throughput=5e14)
    async with store.session() as s:
        for i, wid in enumerate((slow, fast)):
            await set_worker_public_key(s, wid, f"{i:0>64}")
            gpu = GpuRecord(0, "NVIDIA H100 80GB HBM3", 81_559, f"GPU-{i}")
            await set_worker_hardware(s, wid, WorkerHardware(gpus=(gpu,)))
    result = await compute_scores(
        store, metagraph, now=now, params=ScoringParams(), exclude={validator.ss58_address}
    )
    flags = {w.miner_hotkey: w.flag for w in result.board.workers}
    assert flags == {spoof.ss58_address: "model_mismatch", honest.ss58_address: None}
    assert result.weight_of(spoof.ss58_address) == 0.0
    assert result.weight_of(honest.ss58_address) == pytest.approx(1.0)
