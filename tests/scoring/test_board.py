from __future__ import annotations

import pytest

from byteleap.scoring import (
    ChallengeRecord,
    FailureReason,
    IpChange,
    LeaseRevenue,
    ScoringParams,
    Verdict,
    WorkerAvailability,
    normalise_weights,
    score_network,
)

NOW = 1_000_000.0
P = ScoringParams()
FULL = P.availability_buckets
TF = 1e12


def history(miner: str, worker: str, tp: float, rounds: int = 45) -> list[ChallengeRecord]:
    return [
        ChallengeRecord(worker, miner, NOW - i * 240.0, Verdict.OK, None, tp) for i in range(rounds)
    ]


def online(miner: str, worker: str, buckets: int = FULL) -> WorkerAvailability:
    return WorkerAvailability(miner, worker, buckets)


def test_worker_score_is_performance_times_participation_times_availability() -> None:
    records = history("m", "w", 100 * TF, rounds=20)
    board = score_network(records, [online("m", "w", FULL // 2)], now=NOW)
    (w,) = board.workers
    assert w.score == pytest.approx(100 * TF * (20 / 40.5) * ((FULL // 2) / FULL))
    assert board.miner("m").challenge_raw == pytest.approx(w.score)


def test_zero_everything() -> None:
    board = score_network([], now=NOW, miners=["a", "b"])
    assert [(m.hotkey, m.final, m.challenge, m.lease) for m in board.miners] == [
        ("a", 0.0, 0.0, 0.0),
        ("b", 0.0, 0.0, 0.0),
    ]
    assert not board.lease_active
    assert normalise_weights(board.final_scores(), {"a": 0, "b": 1}) == {}


def test_no_availability_data_means_never_online() -> None:
    board = score_network(history("m", "w", 100 * TF), now=NOW)
    assert board.workers[0].availability == 0.0 and board.workers[0].score == 0.0


@pytest.mark.parametrize(("workers", "k", "counted"), [(3, 5, 3), (5, 5, 5), (8, 5, 5), (4, 1, 1)])
def test_best_k_workers_cut_off(workers: int, k: int, counted: int) -> None:
    params = ScoringParams(top_k_workers=k)
    records = [r for i in range(workers) for r in history("m", f"w{i}", (i + 1) * TF)]
    avail = [online("m", f"w{i}") for i in range(workers)]
    board = score_network(records, avail, now=NOW, params=params)
    best = sorted((w.score for w in board.workers), reverse=True)[:k]
    assert board.miner("m").challenge_raw == pytest.approx(sum(best))
    assert sum(w.counted for w in board.workers) == counted
    assert board.miner("m").workers == workers
    if workers > k:
        assert not any(w.counted for w in board.workers if w.worker_id == "w0")


def test_challenge_is_normalised_by_the_best_miner() -> None:
    records = history("a", "w", 100 * TF) + history("b", "w", 25 * TF)
    board = score_network(records, [online("a", "w"), online("b", "w")], now=NOW)
    assert board.miner("a").challenge == 1.0
    assert board.miner("b").challenge == pytest.approx(0.25)


def test_wrong_answer_zeroes_the_worker_not_the_miner() -> None:
    records = history("m", "cheat", 100 * TF) + history("m", "honest", 50 * TF)
    records.append(ChallengeRecord("cheat", "m", NOW - 5, Verdict.FAILED, FailureReason.BAD_PROOF))
    board = score_network(records, [online("m", "cheat"), online("m", "honest")], now=NOW)
    scores = {w.worker_id: (w.banned, w.score) for w in board.workers}
    assert scores["cheat"] == (True, 0.0)
    assert scores["honest"][1] == pytest.approx(50 * TF)
    assert board.miner("m").challenge_raw == pytest.approx(50 * TF)


def test_no_lease_anywhere_means_final_is_challenge() -> None:
    records = history("a", "w", 100 * TF) + history("b", "w", 50 * TF)
    board = score_network(records, [online("a", "w"), online("b", "w")], now=NOW)
    assert not board.lease_active
    assert board.final_scores() == {"a": 1.0, "b": pytest.approx(0.5)}
    assert normalise_weights(board.final_scores(), {"a": 0, "b": 1}) == {
        0: pytest.approx(2 / 3),
        1: pytest.approx(1 / 3),
    }


def test_with_leases_the_shares_split_by_the_ramped_lease_share() -> None:
    # Replaces the old 70/30 switch on best-miner-normalised scores: both parts are now shares
    # of their totals and the lease share is min(0.7, R / V).
    records = history("a", "w", 100 * TF) + history("b", "w", 50 * TF)
    leases = [LeaseRevenue("b", 3.0, NOW - 60, "w"), LeaseRevenue("b", 1.0, NOW - 120, "w")]
    leases.append(LeaseRevenue("a", 2.0, NOW - 60, "w"))
    avail = [online("a", "w"), online("b", "w")]
    params = ScoringParams(lease_emission_value=60.0)
    board = score_network(records, avail, leases=leases, now=NOW, params=params)
    assert board.lease_active and (board.lease_revenue, board.lease_share) == (6.0, 0.1)
    a, b = board.miner("a"), board.miner("b")
    assert (b.lease_revenue, b.lease, a.lease) == (4.0, pytest.approx(2 / 3), pytest.approx(1 / 3))
    assert a.share == pytest.approx(0.1 * (1 / 3) + 0.9 * (2 / 3))
    assert b.share == pytest.approx(0.1 * (2 / 3) + 0.9 * (1 / 3))
    assert (a.final, b.final) == (1.0, pytest.approx(b.share / a.share))
    assert (a.challenge, b.challenge) == (1.0, pytest.approx(0.5))  # still best-normalised
    weights = normalise_weights(board.final_scores(), {"a": 0, "b": 1})
    assert weights == {0: pytest.approx(a.share), 1: pytest.approx(b.share)}


def test_the_lease_share_stops_at_lease_weight() -> None:
    records = history("a", "w", 100 * TF) + history("b", "w", 100 * TF)
    leases = [LeaseRevenue("b", 500.0, NOW - 60, "w")]
    board = score_network(records, [online("a", "w"), online("b", "w")], leases=leases, now=NOW)
    assert board.lease_share == pytest.approx(0.7)
    assert board.miner("a").share == pytest.approx(0.3 * 0.5)
    assert board.miner("b").share == pytest.approx(0.7 + 0.3 * 0.5)


def test_with_no_challenge_score_anywhere_weights_follow_lease_revenue() -> None:
    # Both workers passed (so their revenue counts) but were never seen online: no miner has a
    # challenge score, and the weights can only follow lease revenue (docs/scoring.md).
    records = history("a", "w", TF, rounds=1) + history("b", "w", TF, rounds=1)
    leases = [LeaseRevenue("a", 0.1, NOW, "w"), LeaseRevenue("b", 0.3, NOW, "w")]
    board = score_network(records, leases=leases, now=NOW, miners=["c"])
    assert board.lease_active and board.lease_share == pytest.approx(0.4)
    assert board.final_scores() == {"a": pytest.approx(1 / 3), "b": 1.0, "c": 0.0}
    weights = normalise_weights(board.final_scores(), {"a": 0, "b": 1, "c": 2})
    assert weights == {0: pytest.approx(0.25), 1: pytest.approx(0.75)}


def test_leases_outside_the_window_do_not_count() -> None:
    records = history("a", "w", TF)
    old = LeaseRevenue("a", 5.0, NOW - P.lease_window_min * 60 - 1, "w")
    future = LeaseRevenue("a", 5.0, NOW + 10, "w")
    board = score_network(records, leases=[old, future], now=NOW, miners=["a"])
    assert not board.lease_active and board.miner("a").lease_revenue == 0.0
    assert board.miner("a").lease_rejected == 0.0  # outside the window is not "rejected"


def test_ip_changes_count_only_inside_the_availability_window() -> None:
    span = P.availability_hours * 3600
    changes = [IpChange("m", "w", NOW - 10), IpChange("m", "w", NOW - span - 10)]
    board = score_network(history("m", "w", TF), [online("m", "w")], changes, now=NOW)
    assert (board.workers[0].ip_changes, board.workers[0].availability) == (1, 0.5)


def test_repeated_availability_samples_keep_the_larger() -> None:
    avail = [online("m", "w", 10), online("m", "w", FULL), online("m", "w", 5)]
    board = score_network(history("m", "w", TF), avail, now=NOW)
    assert board.workers[0].availability == 1.0


def test_outputs_are_sorted() -> None:
    records = history("b", "z", TF, 1) + history("a", "y", TF, 1) + history("a", "x", TF, 1)
    board = score_network(records, now=NOW, miners=["c"])
    assert [m.hotkey for m in board.miners] == ["a", "b", "c"]
    assert [(w.miner_hotkey, w.worker_id) for w in board.workers] == [
        ("a", "x"),
        ("a", "y"),
        ("b", "z"),
    ]
