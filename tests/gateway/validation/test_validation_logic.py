"""The pure core of output validation: digests, sampling and the majority decision."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.gateway.output_verdicts import (
    MAX_RUNS,
    NeedRuns,
    Outcome,
    Run,
    Verdict,
    decide,
    digest_of,
    has_result,
    pick_checker,
    should_validate,
)
from byteleap.protocol.execution import ArtifactInfo, ExecutionResult, ExecutionState

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def result(
    stdout: str = "42\n",
    exit_code: int = 0,
    artifacts: tuple[tuple[str, int, str], ...] = (),
    state: ExecutionState = ExecutionState.SUCCEEDED,
    dropped: int = 0,
) -> ExecutionResult:
    return ExecutionResult(
        exit_code=exit_code,
        state=state,
        stdout_tail=stdout,
        stderr_tail="noise that differs between runs",
        stdout_dropped_bytes=dropped,
        stderr_dropped_bytes=0,
        started_at=NOW,
        finished_at=NOW,
        artifacts=[ArtifactInfo(path=p, size=s, sha256=h) for p, s, h in artifacts],
    )


def test_equal_results_have_equal_digests_whatever_the_artifact_order_or_stderr() -> None:
    a = result(artifacts=(("a.bin", 3, "aa"), ("b.bin", 4, "bb")))
    b = result(artifacts=(("b.bin", 4, "bb"), ("a.bin", 3, "aa")))
    assert digest_of(a) == digest_of(b)
    assert digest_of(a).hex == digest_of(b).hex


@pytest.mark.parametrize(
    "other",
    [
        result(stdout="43\n"),
        result(exit_code=1),
        result(artifacts=(("a.bin", 3, "aa"),)),
        result(dropped=10),  # same tail, but more output before it
    ],
    ids=["stdout", "exit_code", "artifacts", "dropped_bytes"],
)
def test_each_part_of_the_result_changes_the_digest(other: ExecutionResult) -> None:
    assert digest_of(result()).hex != digest_of(other).hex


def test_a_changed_artifact_hash_changes_the_digest() -> None:
    base = result(artifacts=(("a.bin", 3, "aa"),))
    assert digest_of(base).hex != digest_of(result(artifacts=(("a.bin", 3, "ab"),))).hex


def test_only_runs_that_reached_their_own_end_count() -> None:
    assert has_result(result())
    assert has_result(result(exit_code=3, state=ExecutionState.FAILED))
    assert not has_result(result(state=ExecutionState.TIMED_OUT))
    assert not has_result(result(state=ExecutionState.CANCELLED))
    assert not has_result(None)


@given(st.booleans(), st.booleans(), st.floats(0, 1), st.floats(0, 1, exclude_max=True))
def test_sampling(deterministic: bool, requested: bool, fraction: float, draw: float) -> None:
    chosen = should_validate(
        deterministic=deterministic, requested=requested, fraction=fraction, draw=draw
    )
    if not deterministic:
        assert not chosen
    elif requested or fraction == 1.0:
        assert chosen
    elif fraction == 0.0:
        assert not chosen


def test_one_run_needs_a_second_on_another_miner() -> None:
    assert decide([Run("A", "d1")]) == NeedRuns(exclude=frozenset({"A"}))


def test_two_agreeing_runs_match() -> None:
    verdict = decide([Run("A", "d1"), Run("B", "d1")])
    assert isinstance(verdict, Verdict)
    assert verdict.outcome is Outcome.MATCH and verdict.faulty == () and not verdict.refund


def test_a_disagreement_needs_a_third_miner() -> None:
    assert decide([Run("A", "d1"), Run("B", "d2")]) == NeedRuns(exclude=frozenset({"A", "B"}))


def test_a_wrong_customer_run_is_refunded_and_its_miner_blamed() -> None:
    verdict = decide([Run("cheat", "bad"), Run("B", "good"), Run("C", "good")])
    assert isinstance(verdict, Verdict)
    assert verdict.outcome is Outcome.MISMATCH
    assert verdict.faulty == ("cheat",) and verdict.refund and verdict.majority == "good"


def test_a_wrong_re_execution_blames_only_its_miner_and_refunds_nothing() -> None:
    verdict = decide([Run("A", "good"), Run("cheat", "bad"), Run("C", "good")])
    assert isinstance(verdict, Verdict)
    assert verdict.faulty == ("cheat",) and not verdict.refund


def test_no_majority_blames_nobody() -> None:
    verdict = decide([Run("A", "1"), Run("B", "2"), Run("C", "3")])
    assert isinstance(verdict, Verdict)
    assert verdict.outcome is Outcome.MISMATCH and verdict.majority is None
    assert verdict.faulty == () and not verdict.refund


@pytest.mark.parametrize(
    "runs",
    [[], [Run("A", "1"), Run("A", "1")], [Run(m, "1") for m in "ABCD"]],
    ids=["none", "same_miner_twice", "too_many"],
)
def test_bad_input_is_refused(runs: list[Run]) -> None:
    with pytest.raises(ValueError):
        decide(runs)


@given(st.lists(st.sampled_from("xyz"), min_size=1, max_size=MAX_RUNS))
def test_decide_properties(digests: list[str]) -> None:
    runs = [Run(f"m{i}", d) for i, d in enumerate(digests)]
    step = decide(runs)
    if isinstance(step, NeedRuns):
        assert len(runs) < MAX_RUNS and step.exclude == {r.miner_hotkey for r in runs}
        return
    assert len(runs) >= 2
    # A miner is blamed only by a strict majority, and only when it is outside it.
    for run in runs:
        if run.miner_hotkey in step.faulty:
            assert step.majority is not None and run.digest != step.majority
            assert sum(r.digest == step.majority for r in runs) * 2 > len(runs)
    assert step.refund == (step.majority is not None and runs[0].digest != step.majority)
    assert (step.outcome is Outcome.MATCH) == (len(set(digests)) == 1)


@given(st.lists(st.integers(), min_size=1, max_size=50), st.floats(0, 1, exclude_max=True))
def test_the_checker_is_any_fitting_worker(fitting: list[int], draw: float) -> None:
    assert pick_checker(fitting, draw) in fitting


def test_the_checker_is_drawn_uniformly_not_the_best_ranked() -> None:
    ranked = ["best", "second", "third", "fourth"]
    draws = [i / 400 for i in range(400)]
    picks = [pick_checker(ranked, d) for d in draws]
    # A best-first pick made the top-ranked miner (once a wrong-output cheater) the checker
    # of every job: each worker must check a quarter.
    assert {w: picks.count(w) for w in ranked} == dict.fromkeys(ranked, 100)


def test_no_checker_from_nothing() -> None:
    with pytest.raises(ValueError):
        pick_checker([], 0.5)
