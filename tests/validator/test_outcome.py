"""Every proof verdict lands in exactly one store status; only cheats are FAILED."""

from __future__ import annotations

import pytest

from byteleap.proof import Verdict, VerdictReason
from byteleap.scoring import VERIFIED_WRONG, FailureReason
from byteleap.store import ChallengeStatus
from byteleap.validator.outcome import (
    STATUS_OF_FAILURE,
    status_for_call_failure,
    status_of_verdict,
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
        ("round_deadline", ChallengeStatus.TIMED_OUT),
        # A refusal after the challenge is issued is the worker's failure, whatever the miner
        # says of it: "taken by a customer" used to count for nobody, which let a miner refuse
        # every challenge it could not win.
        ("illegal_transition", ChallengeStatus.ERRORED),
        ("worker_unavailable", ChallengeStatus.ERRORED),
    ],
)
def test_call_failures_are_failures_but_never_cheating(
    reason: str, status: ChallengeStatus
) -> None:
    assert status_for_call_failure(reason) is status
