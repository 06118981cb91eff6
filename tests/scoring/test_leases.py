"""Lease revenue: the ramped lease share (washing never pays) and which revenue counts."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byteleap.scoring import (
    ChallengeColumns,
    ChallengeRecord,
    FailureReason,
    LeaseRevenue,
    ScoreBoard,
    ScoringError,
    ScoringParams,
    Verdict,
    WorkerAvailability,
    lease_share,
    normalise_weights,
    score_columns,
    score_network,
)

NOW = 1_000_000.0
P = ScoringParams()
FULL = P.availability_buckets
TF = 1e12
W = P.lease_challenge_window_min * 60.0


def history(miner: str, worker: str, tp: float = TF, *, last: float = NOW, rounds: int = 45):  # type: ignore[no-untyped-def]
    return [
        ChallengeRecord(worker, miner, last - i * 240.0, Verdict.OK, None, tp)
        for i in range(rounds)
    ]


def weights(board: ScoreBoard) -> dict[str, float]:
    uids = {m.hotkey: i for i, m in enumerate(board.miners)}
    by_uid = normalise_weights(board.final_scores(), uids)
    return {h: by_uid.get(uid, 0.0) for h, uid in uids.items()}


# --- the ramp ----------------------------------------------------------------------------


def test_the_lease_share_ramps_from_zero_without_a_cliff() -> None:
    p = ScoringParams(lease_emission_value=10.0)
    assert lease_share(0.0, p) == 0.0
    assert lease_share(1e-9, p) == pytest.approx(1e-10)
    assert lease_share(3.5, p) == pytest.approx(0.35)
    assert lease_share(7.0, p) == pytest.approx(0.7)
    assert lease_share(1e9, p) == pytest.approx(0.7)
    uneven = ScoringParams(lease_weight=1.0, challenge_weight=1.0, lease_emission_value=10.0)
    assert uneven.max_lease_share == 0.5 and lease_share(100.0, uneven) == 0.5


def _equal_miners(n: int) -> tuple[list[ChallengeRecord], list[WorkerAvailability]]:
    records = [r for i in range(n) for r in history(f"m{i}", "w", 100 * TF)]
    return records, [WorkerAvailability(f"m{i}", "w", FULL) for i in range(n)]


@pytest.mark.adversarial
@pytest.mark.parametrize("x", [0.0006, 0.7, 50.0])
def test_ten_equal_miners_a_wash_earns_less_than_it_paid(x: float) -> None:
    """The issue's case: m0 rents its own worker. Under the old 70/30 switch any wash took m0
    from 0.100 to 0.270 and each honest miner to 0.081, whatever it paid."""
    records, avail = _equal_miners(10)
    before = weights(score_network(records, avail, now=NOW))
    assert before["m0"] == pytest.approx(0.1)
    wash = LeaseRevenue("m0", x, NOW - 60, "w", lease_start=NOW - 120)
    board = score_network(records, avail, leases=[wash], now=NOW)
    after = weights(board)
    s = min(0.7, x / P.lease_emission_value)
    assert board.lease_share == pytest.approx(s)
    # m0's share: s × 1 + (1 − s) × 0.1; an honest miner keeps (1 − s) × 0.1.
    assert after["m0"] == pytest.approx(0.1 + 0.9 * s)
    assert after["m1"] == pytest.approx(0.1 * (1 - s))
    gain_worth = (after["m0"] - before["m0"]) * P.lease_emission_value
    assert 0 < gain_worth < x


Honest = tuple[list[ChallengeRecord], list[WorkerAvailability], list[LeaseRevenue]]


@st.composite
def honest_networks(draw: st.DrawFn) -> Honest:
    """Miners h0.. with workers that pass, fail and lease; some revenue has no pass behind it."""
    records: list[ChallengeRecord] = []
    avail: list[WorkerAvailability] = []
    leases: list[LeaseRevenue] = []
    for i in range(draw(st.integers(1, 8))):
        miner = f"h{i}"
        for j in range(draw(st.integers(1, 3))):
            worker = f"w{j}"
            for age in draw(st.lists(st.floats(0, P.window_s * 1.3), max_size=10)):
                tp = draw(st.integers(0, 1000)) * TF
                if draw(st.integers(0, 4)):
                    records.append(ChallengeRecord(worker, miner, NOW - age, Verdict.OK, None, tp))
                else:
                    reason = draw(st.sampled_from(list(FailureReason)))
                    records.append(
                        ChallengeRecord(worker, miner, NOW - age, Verdict.FAILED, reason)
                    )
            avail.append(WorkerAvailability(miner, worker, draw(st.integers(0, FULL))))
            for _ in range(draw(st.integers(0, 3))):
                at = NOW - draw(st.floats(0, P.lease_window_min * 60.0 * 1.2))
                start = at - draw(st.floats(0, 6 * 3600.0))
                amount = draw(st.floats(0, 1e4))
                leases.append(LeaseRevenue(miner, amount, at, worker, lease_start=start))
    return records, avail, leases


@pytest.mark.adversarial
@settings(max_examples=200, deadline=None)
@given(
    honest_networks(),
    st.integers(1, 2),
    st.lists(st.floats(1e-9, 1e6), min_size=1, max_size=3),
    st.floats(1e-3, 1e4),
    st.floats(0.01, 1.0),
)
def test_no_wash_gains_more_weight_than_it_paid_for(
    honest: Honest,
    washers: int,
    washes: list[float],
    value: float,
    lease_weight: float,
) -> None:
    """For any honest network, any washing coalition and any amounts: the coalition's weight
    gain × V ≤ what it paid, up to float rounding (ε = 1e-9 × (V + x))."""
    records, avail, leases = honest
    params = ScoringParams(
        lease_emission_value=value, lease_weight=lease_weight, challenge_weight=1 - lease_weight
    )
    names = [f"x{k}" for k in range(washers)]
    for name in names:  # a real worker that passes: its revenue counts
        records = records + history(name, "w", 10 * TF)
        avail = [*avail, WorkerAvailability(name, "w", FULL)]
    before = weights(score_network(records, avail, leases=leases, now=NOW, params=params))
    wash = [
        LeaseRevenue(names[k % washers], x, NOW - 30, "w", lease_start=NOW - 90)
        for k, x in enumerate(washes)
    ]
    board = score_network(records, avail, leases=leases + wash, now=NOW, params=params)
    after = weights(board)
    assert board.lease_revenue >= sum(washes) * (1 - 1e-12)  # the wash counted
    gain = sum(after[n] - before[n] for n in names)
    paid = sum(washes)
    assert gain * value <= paid + 1e-9 * (value + paid)


# --- which revenue counts ----------------------------------------------------------------


@pytest.mark.adversarial
def test_a_never_challenged_worker_earns_nothing() -> None:
    """A worker that never existed, "probed alive" by its own miner, with receipts that verify."""
    records = history("m", "real")
    avail = [WorkerAvailability("m", "real", FULL)]
    ghost = [LeaseRevenue("m", 5.0, NOW - 60 * k, "ghost", NOW - 3600) for k in range(5)]
    board = score_network(records, avail, leases=ghost, now=NOW)
    assert not board.lease_active and board.lease_share == 0.0
    m = board.miner("m")
    assert (m.lease_revenue, m.lease, m.lease_rejected) == (0.0, 0.0, 25.0)
    assert m.share == pytest.approx(1.0)  # its real worker's challenge score, nothing more


def test_a_worker_that_passed_a_challenge_earns() -> None:
    records = history("m", "w", last=NOW - 600, rounds=3)
    lease = LeaseRevenue("m", 5.0, NOW - 60, "w", lease_start=NOW - 300)
    board = score_network(records, [WorkerAvailability("m", "w", FULL)], leases=[lease], now=NOW)
    assert board.lease_revenue == 5.0 and board.miner("m").lease == 1.0
    assert board.workers[0].lease_revenue == 5.0


@pytest.mark.parametrize(
    ("passed_ago", "start_ago", "at_ago", "counts"),
    [
        (W - 1, 0, 0, True),  # just inside the window before the lease began
        (W + 1, 0, 0, False),  # just outside it
        (5 * 3600, 5 * 3600 - 60, 60, True),  # a long lease vouched for by the pass before it
        (5 * 3600, None, 60, False),  # the same period with no lease start: too old
        (30, 5 * 3600, 10, True),  # a pass during the lease counts too
        (10, 3600, 30, False),  # a pass after the period ended does not
    ],
)
def test_the_pass_must_fall_between_the_window_before_the_lease_and_the_period_end(
    passed_ago: float, start_ago: float | None, at_ago: float, counts: bool
) -> None:
    records = [ChallengeRecord("w", "m", NOW - passed_ago, Verdict.OK, None, TF)]
    start = None if start_ago is None else NOW - start_ago
    lease = LeaseRevenue("m", 2.0, NOW - at_ago, "w", lease_start=start)
    board = score_network(records, leases=[lease], now=NOW)
    assert board.miner("m").lease_revenue == (2.0 if counts else 0.0)
    assert board.miner("m").lease_rejected == (0.0 if counts else 2.0)


def test_a_failed_challenge_or_another_workers_pass_does_not_vouch() -> None:
    records = [
        ChallengeRecord("w", "m", NOW - 60, Verdict.FAILED, FailureReason.TIMEOUT),
        ChallengeRecord("other", "m", NOW - 60, Verdict.OK, None, TF),
        ChallengeRecord("w", "n", NOW - 60, Verdict.OK, None, TF),  # same id, another miner
    ]
    lease = LeaseRevenue("m", 2.0, NOW, "w")
    assert score_network(records, leases=[lease], now=NOW).lease_revenue == 0.0


def test_revenue_that_names_no_worker_never_counts() -> None:
    records = history("m", "w")
    board = score_network(records, leases=[LeaseRevenue("m", 2.0, NOW - 1)], now=NOW)
    assert board.miner("m").lease_revenue == 0.0 and board.miner("m").lease_rejected == 2.0


@pytest.mark.adversarial
def test_a_flagged_worker_scores_zero_and_its_revenue_does_not_count() -> None:
    records = history("m", "dup", 100 * TF) + history("m", "ok", 50 * TF)
    avail = [WorkerAvailability("m", "dup", FULL), WorkerAvailability("m", "ok", FULL)]
    leases = [LeaseRevenue("m", 3.0, NOW, "dup"), LeaseRevenue("m", 1.0, NOW, "ok")]
    flagged = {("m", "dup"): "shared_gpu"}
    board = score_network(records, avail, leases=leases, now=NOW, flagged=flagged)
    rows = {w.worker_id: w for w in board.workers}
    assert (rows["dup"].flag, rows["dup"].score, rows["dup"].lease_revenue) == ("shared_gpu", 0, 0)
    assert (rows["ok"].flag, rows["ok"].score) == (None, pytest.approx(50 * TF))
    m = board.miner("m")
    assert (m.challenge_raw, m.lease_revenue, m.lease_rejected) == (pytest.approx(50 * TF), 1, 3)


def test_score_columns_can_take_the_passes_that_vouch_from_the_caller() -> None:
    # Columns whose passes carry a stand-in time (the validator rebuilds them from summaries).
    columns = ChallengeColumns(
        worker=np.zeros(3, dtype=np.intp),
        at=np.full(3, NOW - 1.0),
        ok=np.ones(3, dtype=np.bool_),
        wrong=np.zeros(3, dtype=np.bool_),
        throughput=np.full(3, TF),
    )
    counts = np.array([FULL], dtype=np.int64)
    lease = [LeaseRevenue("m", 2.0, NOW - 600, "w", lease_start=NOW - 900)]
    args = ([("m", "w")], columns, counts, np.zeros(1, dtype=np.int64), lease)
    assert score_columns(*args, now=NOW).lease_revenue == 0.0  # the stand-in is after the period
    passes = {("m", "w"): [NOW - 1000.0]}
    assert score_columns(*args, now=NOW, lease_passes=passes).lease_revenue == 2.0


@pytest.mark.parametrize("start", [NOW + 1, float("nan"), float("-inf")])
def test_a_lease_cannot_start_after_its_period_or_at_no_time(start: float) -> None:
    with pytest.raises(ScoringError) as err:
        LeaseRevenue("m", 1.0, NOW, "w", lease_start=start)
    assert err.value.reason == "bad_lease_start"
