"""Failover: a lost worker's jobs are retried, and each job completes exactly once."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from byteleap.gateway.scheduler import (
    Attempt,
    AttemptLedger,
    AttemptState,
    SchedulerError,
    UnknownJob,
    reschedule,
)

W1, W2, W3 = ("m1", "w1"), ("m2", "w1"), ("m1", "w2")


def test_reschedule_lists_the_lost_workers_jobs_in_order() -> None:
    assignments = {"j3": W1, "j1": W2, "j2": W1, "j4": W3}
    assert reschedule(W1, assignments) == ["j3", "j2"]
    assert reschedule(("m9", "w9"), assignments) == []


def test_same_attempt_is_accepted_once() -> None:
    ledger = AttemptLedger()
    attempt = ledger.start("j", W1)
    assert (attempt.attempt_id, attempt.worker, attempt.state) == (1, W1, AttemptState.RUNNING)
    assert ledger.accept_result("j", 1) is True
    assert ledger.accept_result("j", 1) is False
    assert ledger.is_done("j")
    assert ledger.current("j").state is AttemptState.COMPLETED  # type: ignore[union-attr]


def test_result_from_a_lost_worker_is_stale_after_the_retry() -> None:
    ledger = AttemptLedger()
    ledger.start("j", W1)
    ledger.start("k", W2)
    assert ledger.worker_lost(W1) == ["j"]
    retry = ledger.start("j", W2)
    assert retry.attempt_id == 2
    assert ledger.accept_result("j", 1) is False  # the lost worker came back with a result
    assert ledger.accept_result("j", 2) is True
    assert ledger.accept_result("j", 1) is False
    assert [a.state for a in ledger.attempts("j")] == [AttemptState.LOST, AttemptState.COMPLETED]


def test_result_from_a_lost_worker_is_refused_even_before_the_retry_starts() -> None:
    ledger = AttemptLedger()
    ledger.start("j", W1)
    ledger.worker_lost(W1)
    assert ledger.accept_result("j", 1) is False
    assert not ledger.is_done("j")
    assert ledger.assignments() == {}


def test_a_failed_attempt_keeps_the_job_open_for_a_retry() -> None:
    ledger = AttemptLedger()
    ledger.start("j", W1)
    assert ledger.accept_result("j", 1, final=False) is True
    assert ledger.accept_result("j", 1) is False
    assert not ledger.is_done("j")
    ledger.start("j", W2)
    assert ledger.accept_result("j", 2) is True


def test_a_new_attempt_supersedes_a_running_one() -> None:
    ledger = AttemptLedger()
    ledger.start("j", W1)
    ledger.start("j", W2)  # e.g. the first timed out
    assert ledger.accept_result("j", 1) is False
    assert ledger.attempts("j")[0].state is AttemptState.SUPERSEDED
    assert ledger.assignments() == {"j": W2}


def test_finished_jobs_take_no_attempt_and_abandoned_jobs_no_result() -> None:
    ledger = AttemptLedger()
    ledger.start("j", W1)
    ledger.accept_result("j", 1)
    with pytest.raises(SchedulerError) as done:
        ledger.start("j", W2)
    assert done.value.reason == "job_completed"
    ledger.start("k", W1)
    ledger.abandon("k")
    assert ledger.accept_result("k", 1) is False
    assert ledger.is_done("k")
    with pytest.raises(UnknownJob):
        ledger.abandon("nope")
    assert ledger.accept_result("nope", 1) is False


def test_a_ledger_rebuilt_from_its_attempts_decides_the_same() -> None:
    ledger = AttemptLedger()
    ledger.start("j", W1)
    ledger.worker_lost(W1)
    ledger.start("j", W2)
    ledger.start("k", W3)
    rebuilt = AttemptLedger(list(reversed(ledger.attempts())))
    assert rebuilt.attempts() != [] and sorted(rebuilt.attempts(), key=str) == sorted(
        ledger.attempts(), key=str
    )
    assert rebuilt.accept_result("j", 1) is False
    assert rebuilt.accept_result("j", 2) is True
    assert rebuilt.assignments() == {"k": W3}


def test_rebuilding_refuses_gaps_in_attempt_numbers() -> None:
    gap = [Attempt(job_id="j", attempt_id=2, miner_hotkey="m", worker_id="w")]
    with pytest.raises(SchedulerError):
        AttemptLedger(gap)


WORKERS = [W1, W2, W3]
JOBS = ["j0", "j1", "j2"]


class ExactlyOnce(RuleBasedStateMachine):
    """Any interleaving of placements, lost workers, retries and (late) results."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = AttemptLedger()
        self.completions: dict[str, list[int]] = {job: [] for job in JOBS}
        self.lost: set[tuple[str, int]] = set()

    @rule(job=st.sampled_from(JOBS), worker=st.sampled_from(WORKERS))
    def place(self, job: str, worker: tuple[str, str]) -> None:
        if self.ledger.is_done(job):
            with pytest.raises(SchedulerError):
                self.ledger.start(job, worker)
        else:
            self.ledger.start(job, worker)

    @rule(worker=st.sampled_from(WORKERS))
    def lose(self, worker: tuple[str, str]) -> None:
        for job in self.ledger.worker_lost(worker):
            self.lost.add((job, len(self.ledger.attempts(job))))

    @rule(job=st.sampled_from(JOBS), attempt=st.integers(1, 6), final=st.booleans())
    def result(self, job: str, attempt: int, final: bool) -> None:
        current = self.ledger.current(job)
        accepted = self.ledger.accept_result(job, attempt, final=final)
        if accepted:
            assert current is not None and current.attempt_id == attempt
            assert (job, attempt) not in self.lost
            if final:
                self.completions[job].append(attempt)

    @invariant()
    def completes_at_most_once(self) -> None:
        for job, done in self.completions.items():
            assert len(done) <= 1
            assert self.ledger.is_done(job) == (len(done) == 1)
        running = self.ledger.assignments()
        assert all(not self.ledger.is_done(job) for job in running)


ExactlyOnce.TestCase.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
test_exactly_once = ExactlyOnce.TestCase
