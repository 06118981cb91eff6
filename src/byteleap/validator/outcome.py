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

# Transport or miner error reasons (MinerCallError.reason) with a status of their own.
CALL_FAILURES: dict[str, ChallengeStatus] = {
    "timeout": ChallengeStatus.TIMED_OUT,
    # The worker left the idle state between the listing and the challenge (a customer's job
    # or lease took it): no evidence either way, so it counts for nobody. A miner refusing
    # every challenge this way earns no passes, so it gains nothing.
    "illegal_transition": ChallengeStatus.ABANDONED,
}


def worker_seconds(elapsed_s: float, rtt_s: float, *, max_rtt_credit_s: float) -> float:
    """What the worker spent on its commitment: the elapsed time less one network round trip.

    The miner decides how fast it answers the ping that measures the round trip, so the credit
    for it is bounded twice: by a param and by half the elapsed time. A miner that stalls its
    pings gains at most that credit and never more than twice its true throughput; before this,
    a slow ping (or just a busy machine) floored the commit time at a microsecond and reported
    thousands of TFLOP/s.
    """
    credit = min(max(rtt_s, 0.0), max_rtt_credit_s, elapsed_s / 2)
    return max(elapsed_s - credit, 1e-9)


def status_of_verdict(verdict: Verdict) -> ChallengeStatus:
    reason = failure_reason_of(verdict)
    return ChallengeStatus.PASSED if reason is None else STATUS_OF_FAILURE[reason]


def status_for_call_failure(reason: str) -> ChallengeStatus:
    """A call that failed before a verdict: timeouts are timeouts, the rest errors."""
    return CALL_FAILURES.get(reason, ChallengeStatus.ERRORED)
