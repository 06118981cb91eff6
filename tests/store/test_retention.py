"""Pruning old challenges never changes a score: the real scoring over a store holding a month
of history gives the same board before and after, on both backends; and a retention shorter
than the longest scoring window is refused at config load."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from bittensor import sp_core

from byteleap.chain.port import Metagraph, NeuronInfo
from byteleap.config import ConfigError, ValidatorSettings, load_settings
from byteleap.net.receipts import (
    LeaseReceipt,
    anonymous_lease_id,
    countersign_as_miner,
    new_receipt,
    sign_as_gateway,
)
from byteleap.scoring import ScoringParams
from byteleap.store import (
    ChallengeRecord,
    ChallengeStatus,
    SpanRow,
    Store,
    bucket_of,
    bulk_insert_challenges,
    bulk_insert_spans,
    record_worker_ip,
    upsert_miner,
    upsert_workers,
)
from byteleap.store.models import Challenge
from byteleap.store.receipts import ReceiptRecord, record_receipt
from byteleap.store.retention import prune_store
from byteleap.validator.scores import ScoreResult, compute_scores

DAY = 86400
RETENTION = 14 * DAY
PARAMS = ScoringParams()
LOOKBACK = PARAMS.lease_challenge_window_min * 60.0
STATUSES = [
    ChallengeStatus.PASSED,
    ChallengeStatus.TIMED_OUT,
    ChallengeStatus.FAILED,
    ChallengeStatus.TIMED_OUT,
    ChallengeStatus.PASSED,
    ChallengeStatus.ERRORED,
]


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


def challenge(
    cid: str, wid: int, mid: int, at: int, status: ChallengeStatus, tp: float
) -> ChallengeRecord:
    passed = status is ChallengeStatus.PASSED
    return ChallengeRecord(
        id=cid, worker_id=wid, miner_id=mid, profile="cpu-f64", n=512, seed="00" * 32,
        status=status, failure_reason=None if passed else "x", claimed_gpu=None, root=None,
        issued_at=at, deadline_at=at + 60, finished_at=at + 5, rtt_s=0.01, commit_s=1.0,
        compute_s=1.0, throughput=tp if passed else None,
    )  # fmt: skip


def receipt(
    gateway: sp_core.Keypair, miner: sp_core.Keypair, worker: str, start: int
) -> ReceiptRecord:
    unsigned = new_receipt(
        lease_id=anonymous_lease_id("lease-" + worker, b"gateway-secret-0123"),
        netuid=1,
        gateway_hotkey=gateway.ss58_address,
        miner_hotkey=miner.ss58_address,
        worker_id=worker,
        gpu_model="H100",
        gpu_count=1,
        period_start=start,
        period_end=start + 600,
        unit_price_micro=800,
        currency="TAO",
    )
    signed: LeaseReceipt = countersign_as_miner(sign_as_gateway(unsigned, gateway), miner)
    return ReceiptRecord(**signed.model_dump())


async def fill(store: Store, now: int) -> tuple[Metagraph, sp_core.Keypair]:
    """A month of history: three miners' workers challenged every hour, online for the
    last 200 h with an IP change; one worker leased for 20 days, whose lease only the pass
    just before it began vouches for. Returns the metagraph and the validator."""
    validator, a, b, leased = key(), key(), key(), key()
    metagraph = Metagraph(
        netuid=1,
        block=100,
        neurons=[neuron(0, validator, permit=True), neuron(1, a), neuron(2, b), neuron(3, leased)],
    )
    lease_start = now - 20 * DAY
    records: list[ChallengeRecord] = []
    async with store.session() as s:
        for miner, workers in ((a, ["a1", "a2"]), (b, ["b1"]), (leased, ["l1"])):
            m = await upsert_miner(s, miner.ss58_address, uid=None, axon=None, at=now - 30 * DAY)
            ids = await upsert_workers(s, m.id, workers, at=now - 30 * DAY)
            for name, wid in ids.items():
                await bulk_insert_spans(
                    s, [SpanRow(wid, bucket_of(now - 200 * 3600), bucket_of(now) + 1)]
                )
                await record_worker_ip(s, wid, "10.0.0.1", at=now - 10 * DAY)
                await record_worker_ip(s, wid, f"10.0.1.{wid}", at=now - 2 * DAY)
                for k, at in enumerate(range(now - 30 * DAY, now, 3600)):
                    if name == "l1" and at >= lease_start - 3600:
                        break  # a leased worker is not challenged
                    # No wrong answer lately: a ban would zero the scores worth comparing.
                    recent = at >= now - 6 * 3600
                    status = STATUSES[(k + wid) % (2 if recent else len(STATUSES))]
                    tp = 1e12 * (1 + (k % 7) / 10)
                    records.append(challenge(f"c-{name}-{k}", wid, m.id, at, status, tp))
                if name == "l1":
                    vouching = lease_start - 1800
                    records.append(
                        challenge("vouch", wid, m.id, vouching, ChallengeStatus.PASSED, 1e12)
                    )
        await bulk_insert_challenges(s, records)
        for start in (lease_start, now - 1800, now - 1200):
            await record_receipt(s, receipt(validator, leased, "l1", start), at=now)
    return metagraph, validator


async def score(
    store: Store, metagraph: Metagraph, validator: sp_core.Keypair, now: int
) -> ScoreResult:
    return await compute_scores(
        store, metagraph, now=now, params=PARAMS, exclude={validator.ss58_address}
    )


def same(x: ScoreResult, y: ScoreResult) -> None:
    assert x.board == y.board
    assert x.weights == y.weights


async def issued(store: Store) -> list[tuple[str, int]]:
    async with store.session() as s:
        rows = await s.execute(sa.select(Challenge.id, Challenge.issued_at))
    return sorted((cid, int(at)) for cid, at in rows)


async def test_pruning_leaves_every_score_as_it_was(store: Store) -> None:
    now = int(time.time())
    metagraph, validator = await fill(store, now)
    before = await score(store, metagraph, validator, now)
    # The history is worth scoring: challenge scores, and the month-old lease's revenue.
    assert before.board.lease_revenue > 0
    assert sum(1 for m in before.board.miners if m.challenge > 0) == 2
    rows_before = await issued(store)
    assert min(at for _, at in rows_before) < now - 2 * RETENTION + 3 * DAY

    deleted = await prune_store(
        store, now=now, retention_s=RETENTION, lookback_s=LOOKBACK, batch=97
    )

    rows_after = await issued(store)
    cutoff = now - RETENTION
    old = [cid for cid, at in rows_after if at < cutoff]
    assert old == ["vouch"]  # everything older went, but the pass that vouches for the lease
    assert deleted == len(rows_before) - len(rows_after)
    assert {r for r in rows_before if r[1] >= cutoff} <= set(rows_after)
    same(before, await score(store, metagraph, validator, now))
    assert await prune_store(store, now=now, retention_s=RETENTION, lookback_s=LOOKBACK) == 0

    # The exception is what keeps the lease's revenue: without that pass it would not count.
    async with store.session() as s:
        await s.execute(sa.delete(Challenge).where(Challenge.id == "vouch"))
    assert (await score(store, metagraph, validator, now)).board.lease_revenue == 0


def test_default_retention_covers_every_scoring_window() -> None:
    settings = ValidatorSettings()
    assert settings.challenge_retention_s >= settings.scoring.longest_window_s
    assert settings.scoring.longest_window_s == 169 * 3600


def test_retention_shorter_than_scoring_is_refused_at_load(tmp_path: Path) -> None:
    config = tmp_path / "v.toml"
    config.write_text("[validator]\nchallenge_retention_s = 86400\n")
    with pytest.raises(ConfigError, match=r"challenge_retention_s.*longest scoring window"):
        load_settings(ValidatorSettings, config)
    # The window follows the scoring params: a longer availability window needs more.
    config.write_text(
        "[validator]\nchallenge_retention_s = 1000000\n[validator.scoring]\n"
        "availability_hours = 300\n"
    )
    with pytest.raises(ConfigError, match=r"1\.08e\+06 s = 300 h"):
        load_settings(ValidatorSettings, config)
    config.write_text("[validator]\nchallenge_retention_s = 608400\n")  # exactly 169 h
    assert load_settings(ValidatorSettings, config).challenge_retention_s == 608400
