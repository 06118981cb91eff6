from __future__ import annotations

import pytest

from byteleap.proof import Verdict, VerdictReason
from byteleap.scoring import VERIFIED_WRONG, FailureReason
from byteleap.scoring.verdicts import FAILURE_OF_VERDICT, failure_reason_of


def test_every_failing_verdict_has_a_reason() -> None:
    assert set(FAILURE_OF_VERDICT) == set(VerdictReason) - {VerdictReason.OK}


def test_passed_verdict_is_no_failure() -> None:
    assert failure_reason_of(Verdict.passed()) is None


@pytest.mark.parametrize(
    ("reason", "bans"),
    [
        (VerdictReason.WRONG_VALUE, True),
        (VerdictReason.BAD_PROOF, True),
        (VerdictReason.REPLAYED, True),
        (VerdictReason.LATE, False),
        (VerdictReason.MALFORMED, False),
        (VerdictReason.BAD_SIGNATURE, False),
    ],
)
def test_only_proven_cheats_ban(reason: VerdictReason, bans: bool) -> None:
    got = failure_reason_of(Verdict.failed(reason, "x"))
    assert isinstance(got, FailureReason)
    assert (got in VERIFIED_WRONG) is bans
