"""How a proof verdict becomes a scoring failure reason: the one place the two vocabularies meet.

Only outcomes that prove the worker committed to something other than the product ban it: a
wrong sampled entry, a Merkle proof that does not open the committed root, a root replayed
from an earlier challenge. A late answer is a timeout; what may be a broken client (bad shape,
bad signature, another challenge's id, oversized or unparsable) is malformed.
"""

from __future__ import annotations

from byteleap.proof import Verdict as ProofVerdict
from byteleap.proof import VerdictReason
from byteleap.scoring.records import FailureReason

__all__ = ["FAILURE_OF_VERDICT", "failure_reason_of"]

FAILURE_OF_VERDICT: dict[VerdictReason, FailureReason] = {
    VerdictReason.WRONG_VALUE: FailureReason.WRONG_ANSWER,
    VerdictReason.BAD_PROOF: FailureReason.BAD_PROOF,
    VerdictReason.REPLAYED: FailureReason.BAD_PROOF,
    VerdictReason.LATE: FailureReason.TIMEOUT,
    VerdictReason.WRONG_SHAPE: FailureReason.MALFORMED,
    VerdictReason.MALFORMED: FailureReason.MALFORMED,
    VerdictReason.OVERSIZED: FailureReason.MALFORMED,
    VerdictReason.WRONG_CHALLENGE: FailureReason.MALFORMED,
    VerdictReason.BAD_SIGNATURE: FailureReason.MALFORMED,
}


def failure_reason_of(verdict: ProofVerdict) -> FailureReason | None:
    """None for a passed verdict, else the failure reason scoring records."""
    if verdict.ok:
        return None
    return FAILURE_OF_VERDICT[verdict.reason]
