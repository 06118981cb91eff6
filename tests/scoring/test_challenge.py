from __future__ import annotations

import numpy as np
import pytest

from byteleap.scoring import (
    ChallengeColumns,
    ChallengeRecord,
    FailureReason,
    ScoringError,
    ScoringParams,
    Verdict,
    challenge_stats,
    lower_tail_mean,
)

NOW = 1_000_000.0
P = ScoringParams()
TF = 1e12


def passed(tp: float = 100 * TF, age: float = 60.0, worker: str = "w") -> ChallengeRecord:
    return ChallengeRecord(worker, "m", NOW - age, Verdict.OK, None, tp)


def failed(reason: FailureReason, age: float = 60.0, worker: str = "w") -> ChallengeRecord:
    return ChallengeRecord(worker, "m", NOW - age, Verdict.FAILED, reason)


def stats(records: list[ChallengeRecord], params: ScoringParams = P) -> dict[str, float]:
    cols = ChallengeColumns.from_records(records, {("m", "w"): 0})
    s = challenge_stats(cols, 1, now=NOW, params=params)
    return {
        "successes": int(s.successes[0]),
        "failures": int(s.failures[0]),
        "wrong": int(s.wrong_answers[0]),
        "p": float(s.participation[0]),
        "perf": float(s.performance[0]),
        "banned": bool(s.banned[0]),
    }


def test_no_records_scores_nothing() -> None:
    assert stats([]) == {
        "successes": 0,
        "failures": 0,
        "wrong": 0,
        "p": 0.0,
        "perf": 0.0,
        "banned": False,
    }


@pytest.mark.parametrize(
    ("n_ok", "n_timeout", "expected_p"),
    [
        (45, 0, 1.0),  # every round: capped at 1
        (41, 0, 1.0),  # above the 40.5 target
        (20, 0, 20 / 40.5),
        (30, 5, 25 / 40.5),  # each failure cancels a success
        (5, 10, 0.0),  # more failures than successes: floor at 0
        (0, 45, 0.0),  # all timeouts
    ],
)
def test_participation(n_ok: int, n_timeout: int, expected_p: float) -> None:
    records = [passed(age=i) for i in range(n_ok)]
    records += [failed(FailureReason.TIMEOUT, age=i) for i in range(n_timeout)]
    s = stats(records)
    assert s["p"] == pytest.approx(expected_p)
    assert (s["successes"], s["failures"], s["banned"]) == (n_ok, n_timeout, False)


def test_all_timeouts_have_no_performance_and_no_ban() -> None:
    s = stats([failed(FailureReason.TIMEOUT, age=i) for i in range(10)])
    assert s["perf"] == 0.0 and not s["banned"]


@pytest.mark.parametrize("reason", [FailureReason.WRONG_ANSWER, FailureReason.BAD_PROOF])
def test_one_verified_wrong_answer_bans(reason: FailureReason) -> None:
    records = [passed(age=i * 240) for i in range(44)] + [failed(reason, age=30)]
    s = stats(records)
    assert s["banned"] and s["wrong"] == 1 and s["perf"] > 0


@pytest.mark.parametrize(
    "reason", [FailureReason.TIMEOUT, FailureReason.DISCONNECTED, FailureReason.MALFORMED]
)
def test_unverified_failures_never_ban(reason: FailureReason) -> None:
    assert not stats([passed(), failed(reason)])["banned"]


def test_ban_lasts_the_ban_window_then_expires() -> None:
    params = ScoringParams(window_min=180, wrong_answer_ban_min=60)
    inside = stats([passed(), failed(FailureReason.WRONG_ANSWER, age=59 * 60)], params)
    outside = stats([passed(), failed(FailureReason.WRONG_ANSWER, age=61 * 60)], params)
    assert inside["banned"] and not outside["banned"]
    # A ban longer than the window reaches records the window itself no longer counts.
    long_ban = ScoringParams(window_min=60, wrong_answer_ban_min=600)
    assert stats([passed(), failed(FailureReason.WRONG_ANSWER, age=300 * 60)], long_ban)["banned"]


def test_window_is_half_open_and_ignores_the_future() -> None:
    edge = P.window_s
    s = stats([passed(age=edge), passed(age=edge - 1), passed(age=0), passed(age=-5)])
    assert s["successes"] == 2


def test_failed_records_throughput_is_ignored() -> None:
    r = ChallengeRecord("w", "m", NOW - 1, Verdict.FAILED, FailureReason.TIMEOUT, 1e18)
    assert stats([passed(tp=10 * TF), r])["perf"] == pytest.approx(10 * TF)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([7.0, 7.0, 7.0], 0.5, 7.0),  # steady: its own throughput
        ([1.0, 3.0], 0.5, 1.0),  # lowest half of two is the lower one
        ([1.0, 2.0, 3.0], 0.5, (1.0 + 0.5 * 2.0) / 1.5),  # fractional edge sample
        ([0.0, 150.0, 150.0], 0.5, 50.0),  # the median (150) would exceed the mean (100)
        ([4.0, 1.0, 3.0, 2.0], 1.0, 2.5),  # q = 1 is the plain mean
        ([4.0, 1.0, 3.0, 2.0], 0.25, 1.0),
    ],
)
def test_lower_tail_mean(values: list[float], q: float, expected: float) -> None:
    groups = np.zeros(len(values), dtype=np.intp)
    got = lower_tail_mean(groups, np.array(values), 1, q)
    assert got[0] == pytest.approx(expected)


def test_lower_tail_mean_per_group_and_empty_groups() -> None:
    groups = np.array([2, 0, 2, 0], dtype=np.intp)
    got = lower_tail_mean(groups, np.array([10.0, 1.0, 30.0, 3.0]), 3, 0.5)
    assert got.tolist() == [1.0, 0.0, 10.0]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"throughput": np.array([np.nan])}, "bad_throughput"),
        ({"throughput": np.array([-1.0])}, "bad_throughput"),
        ({"throughput": np.array([np.inf])}, "bad_throughput"),
        ({"worker": np.array([3], dtype=np.intp)}, "bad_worker"),
        ({"at": np.array([1.0, 2.0])}, "shape"),
        ({"wrong": np.array([True])}, "bad_verdict"),
    ],
)
def test_columns_refuse_bad_input(change: dict[str, np.ndarray], reason: str) -> None:
    base = {
        "worker": np.array([0], dtype=np.intp),
        "at": np.array([NOW]),
        "ok": np.array([True]),
        "wrong": np.array([False]),
        "throughput": np.array([1.0]),
    }
    cols = ChallengeColumns(**(base | change))
    with pytest.raises(ScoringError) as err:
        challenge_stats(cols, 1, now=NOW, params=P)
    assert err.value.reason == reason


@pytest.mark.parametrize(
    ("verdict", "reason", "tp"),
    [
        (Verdict.OK, FailureReason.TIMEOUT, 1.0),
        (Verdict.FAILED, None, 0.0),
        (Verdict.OK, None, -1.0),
        (Verdict.OK, None, float("nan")),
    ],
)
def test_records_refuse_inconsistent_verdicts(
    verdict: Verdict, reason: FailureReason | None, tp: float
) -> None:
    with pytest.raises(ScoringError):
        ChallengeRecord("w", "m", NOW, verdict, reason, tp)
