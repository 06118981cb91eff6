"""Every proof verdict lands in exactly one store status; only cheats are FAILED."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.proof import Verdict, VerdictReason
from byteleap.scoring import VERIFIED_WRONG, FailureReason
from byteleap.store import ChallengeStatus
from byteleap.validator.outcome import (
    STATUS_OF_FAILURE,
    status_for_call_failure,
    status_of_verdict,
    worker_seconds,
)


@pytest.mark.parametrize("reason", list(VerdictReason))
def test_every_verdict_has_a_status(reason: VerdictReason) -> None:
    verdict = Verdict.passed() if reason is VerdictReason.OK else Verdict.failed(reason, "x")
    status = status_of_verdict(verdict)
    assert status.is_terminal
    assert (status is ChallengeStatus.PASSED) == (reason is VerdictReason.OK)


def test_failed_means_verified_wrong_and_nothing_else() -> None:
    assert set(STATUS_OF_FAILURE) == set(FailureReason)
    failed = {r for r, s in STATUS_OF_FAILURE.items() if s is ChallengeStatus.FAILED}
    assert failed == VERIFIED_WRONG


@pytest.mark.parametrize(
    ("reason", "status"),
    [
        ("timeout", ChallengeStatus.TIMED_OUT),
        ("worker_lost", ChallengeStatus.ERRORED),
        ("unreachable", ChallengeStatus.ERRORED),
        ("malformed", ChallengeStatus.ERRORED),
        ("something_new", ChallengeStatus.ERRORED),
        # Taken by a customer between listing and challenge: counts for nobody.
        ("illegal_transition", ChallengeStatus.ABANDONED),
    ],
)
def test_call_failures_never_count_as_cheating(reason: str, status: ChallengeStatus) -> None:
    assert status_for_call_failure(reason) is status


@given(
    elapsed=st.floats(min_value=1e-6, max_value=100.0),
    rtt=st.floats(min_value=0.0, max_value=100.0),
    cap=st.floats(min_value=0.0, max_value=5.0),
)
def test_worker_seconds_never_credits_more_than_the_cap_or_half_the_time(
    elapsed: float, rtt: float, cap: float
) -> None:
    seconds = worker_seconds(elapsed, rtt, max_rtt_credit_s=cap)
    assert seconds <= elapsed
    assert seconds >= elapsed / 2
    assert seconds >= elapsed - cap - 1e-12


@pytest.mark.adversarial
def test_a_miner_that_stalls_its_pings_gains_at_most_twice_its_throughput() -> None:
    # A 40 ms commitment behind a ping the miner held for 2 s: before the cap, the validator
    # took the whole 2 s off and floored the time at a microsecond (thousands of TFLOP/s).
    honest = worker_seconds(0.040, 0.001, max_rtt_credit_s=0.05)
    stalled = worker_seconds(0.040, 2.0, max_rtt_credit_s=0.05)
    assert honest == pytest.approx(0.039)
    assert stalled == pytest.approx(0.020)
    assert honest / stalled <= 2.0
