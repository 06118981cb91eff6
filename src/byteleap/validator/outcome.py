"""How a challenge ends in the store. Pure.

Which proof verdicts are *verified wrong* is decided once, in
`byteleap.scoring.verdicts`; this module only maps that failure vocabulary to
the store's challenge statuses, so the two can never disagree.
"""

from __future__ import annotations

from byteleap.proof import Verdict
from byteleap.scoring import FailureReason
from byteleap.scoring.verdicts import failure_reason_of
from byteleap.store import ChallengeStatus

STATUS_OF_FAILURE: dict[FailureReason, ChallengeStatus] = {
    FailureReason.WRONG_ANSWER: ChallengeStatus.FAILED,
    FailureReason.BAD_PROOF: ChallengeStatus.FAILED,
    FailureReason.TIMEOUT: ChallengeStatus.TIMED_OUT,
    FailureReason.DISCONNECTED: ChallengeStatus.ERRORED,
    FailureReason.MALFORMED: ChallengeStatus.ERRORED,
}

# Transport or miner error reasons (MinerCallError.reason, or a batch item's error) with a
# status of their own. Everything else a miner answers after a challenge is issued (a refusal,
# an illegal state, a lost worker) is an error: a failure, never ``abandoned``. A miner that
# refuses what it cannot win (a reveal, a challenge it would lose to a customer's job) pays for
# it as for a wrong answer's round, so refusing gains it nothing.
CALL_FAILURES: dict[str, ChallengeStatus] = {
    "timeout": ChallengeStatus.TIMED_OUT,
    "round_deadline": ChallengeStatus.TIMED_OUT,
}


def status_of_verdict(verdict: Verdict) -> ChallengeStatus:
    reason = failure_reason_of(verdict)
    return ChallengeStatus.PASSED if reason is None else STATUS_OF_FAILURE[reason]


def status_for_call_failure(reason: str) -> ChallengeStatus:
    """A call that failed before a verdict: timeouts are timeouts, the rest errors."""
    return CALL_FAILURES.get(reason, ChallengeStatus.ERRORED)
