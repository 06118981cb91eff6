"""Properties the issue asks for, over generated networks."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from byteleap.scoring import (
    ChallengeRecord,
    FailureReason,
    IpChange,
    LeaseRevenue,
    ScoreBoard,
    ScoringParams,
    Verdict,
    WorkerAvailability,
    normalise_weights,
    score_network,
)

NOW = 1_000_000.0
P = ScoringParams()
TF = 1e12
PROPS = settings(max_examples=120, deadline=None)
FAILURES = list(FailureReason)


@dataclass(frozen=True)
class Network:
    records: list[ChallengeRecord]
    availability: list[WorkerAvailability]
    ip_changes: list[IpChange]
    leases: list[LeaseRevenue]
    miners: list[str]

    def score(self) -> ScoreBoard:
        return score_network(
            self.records,
            self.availability,
            self.ip_changes,
            self.leases,
            now=NOW,
            miners=self.miners,
        )


ages = st.floats(min_value=0, max_value=P.window_s * 1.2)


@st.composite
def record(draw: st.DrawFn, miner: str, worker: str) -> ChallengeRecord:
    at = NOW - draw(ages)
    if draw(st.booleans()):
        tp = draw(st.integers(min_value=0, max_value=2000)) * TF
        return ChallengeRecord(worker, miner, at, Verdict.OK, None, tp)
    return ChallengeRecord(worker, miner, at, Verdict.FAILED, draw(st.sampled_from(FAILURES)))


@st.composite
def networks(draw: st.DrawFn) -> Network:
    miners = [f"m{i}" for i in range(draw(st.integers(1, 4)))]
    records, avail, changes, leases = [], [], [], []
    for m in miners:
        workers = [f"w{j}" for j in range(draw(st.integers(1, 3)))]
        for w in workers:
            records += draw(st.lists(record(m, w), max_size=12))
            avail.append(WorkerAvailability(m, w, draw(st.integers(0, P.availability_buckets))))
            for _ in range(draw(st.integers(0, 3))):
                changes.append(IpChange(m, w, NOW - draw(st.floats(0, 200 * 3600))))
        for _ in range(draw(st.integers(0, 2))):
            # Some name no worker or one that never existed: those must never count.
            worker = draw(st.sampled_from(["", "ghost", *workers]))
            at = NOW - draw(ages)
            start = at - draw(st.floats(0, 3 * 3600))
            leases.append(LeaseRevenue(m, draw(st.floats(0, 100)), at, worker, start))
    return Network(records, avail, changes, leases, miners)


def shares(board: ScoreBoard) -> dict[str, float]:
    uids = {m.hotkey: i for i, m in enumerate(board.miners)}
    weights = normalise_weights(board.final_scores(), uids)
    return {h: weights.get(uid, 0.0) for h, uid in uids.items()}


def worker_score(board: ScoreBoard, miner: str, worker: str) -> float:
    return next(w.score for w in board.workers if (w.miner_hotkey, w.worker_id) == (miner, worker))


def _target(net: Network, data: st.DataObject) -> tuple[str, str]:
    key = data.draw(st.sampled_from(sorted({a.key for a in net.availability})))
    return key[0], key[1]


@PROPS
@given(networks(), st.data())
def test_more_verified_successes_never_lower_a_score(net: Network, data: st.DataObject) -> None:
    miner, worker = _target(net, data)
    mine = [
        r.throughput_flops
        for r in net.records
        if r.key == (miner, worker) and r.failure_reason is None
    ]
    # A new success at or above the worker's best so far: more rounds passed at its own speed.
    tp = max(mine, default=0.0) + data.draw(st.integers(0, 100)) * TF
    extra = ChallengeRecord(worker, miner, NOW - data.draw(ages), Verdict.OK, None, tp)
    before = net.score()
    after = Network([*net.records, extra], *_rest(net)).score()
    assert worker_score(after, miner, worker) >= worker_score(before, miner, worker)
    assert after.miner(miner).challenge_raw >= before.miner(miner).challenge_raw
    assert shares(after)[miner] >= shares(before)[miner] - 1e-12


@PROPS
@given(networks(), st.data())
def test_a_failure_never_raises_a_score(net: Network, data: st.DataObject) -> None:
    miner, worker = _target(net, data)
    reason = data.draw(st.sampled_from(FAILURES))
    extra = ChallengeRecord(worker, miner, NOW - data.draw(ages), Verdict.FAILED, reason)
    before = net.score()
    after = Network([*net.records, extra], *_rest(net)).score()
    assert worker_score(after, miner, worker) <= worker_score(before, miner, worker)
    assert after.miner(miner).challenge_raw <= before.miner(miner).challenge_raw
    assert shares(after)[miner] <= shares(before)[miner] + 1e-12


def _rest(
    net: Network,
) -> tuple[list[WorkerAvailability], list[IpChange], list[LeaseRevenue], list[str]]:
    return net.availability, net.ip_changes, net.leases, net.miners


@PROPS
@given(
    st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=45).filter(
        lambda v: len(set(v)) > 1
    ),
    st.integers(0, P.availability_buckets),
)
def test_steady_beats_spiky_of_equal_mean(spiky: list[int], online: int) -> None:
    steady_tp = sum(spiky) / len(spiky) * TF
    records = []
    for i, v in enumerate(spiky):
        at = NOW - i * 240.0
        records.append(ChallengeRecord("w", "spiky", at, Verdict.OK, None, v * TF))
        records.append(ChallengeRecord("w", "steady", at, Verdict.OK, None, steady_tp))
    avail = [WorkerAvailability(m, "w", max(online, 1)) for m in ("spiky", "steady")]
    board = score_network(records, avail, now=NOW)
    assert board.miner("steady").challenge_raw > board.miner("spiky").challenge_raw
    assert shares(board)["steady"] > shares(board)["spiky"]


@PROPS
@given(networks(), st.randoms(use_true_random=False))
def test_scores_do_not_depend_on_input_order(net: Network, rnd: random.Random) -> None:
    def shuffled(items: list[Any]) -> list[Any]:
        return rnd.sample(items, len(items))

    permuted = Network(
        shuffled(net.records),
        shuffled(net.availability),
        shuffled(net.ip_changes),
        shuffled(net.leases),
        shuffled(net.miners),
    )
    assert permuted.score() == net.score()


@PROPS
@given(networks())
def test_scores_and_weights_are_bounded_and_finite(net: Network) -> None:
    board = net.score()
    for m in board.miners:
        assert 0.0 <= m.challenge <= 1.0 and 0.0 <= m.lease <= 1.0 and 0.0 <= m.final <= 1.0
        assert 0.0 <= m.share <= 1.0
    assert 0.0 <= board.lease_share <= P.max_lease_share
    for w in board.workers:
        assert math.isfinite(w.score) and w.score >= 0
        assert 0 <= w.participation <= 1 and 0 <= w.availability <= 1
    total = sum(shares(board).values())
    assert total == 0.0 or math.isclose(total, 1.0)
    if any(m.challenge_raw > 0 for m in board.miners):
        # Both parts are shares of their totals, so the shares are the weights already.
        assert math.isclose(sum(m.share for m in board.miners), 1.0)
        for hotkey, weight in shares(board).items():
            assert math.isclose(weight, board.miner(hotkey).share, abs_tol=1e-12)
