from __future__ import annotations

import byteleap.scoring as scoring

PINNED = {
    "MAX_THROUGHPUT_FLOPS",
    "VERIFIED_WRONG",
    "ChallengeColumns",
    "ChallengeRecord",
    "ChallengeStats",
    "FailureReason",
    "IpChange",
    "LeaseRevenue",
    "MinerScore",
    "ScoreBoard",
    "ScoringError",
    "ScoringParams",
    "Verdict",
    "WorkerAvailability",
    "WorkerKey",
    "WorkerScore",
    "availability_fractions",
    "bucket_index",
    "challenge_stats",
    "lease_share",
    "lower_tail_mean",
    "normalise_weights",
    "online_bucket_counts",
    "score_columns",
    "score_network",
}


def test_public_api_is_pinned() -> None:
    assert set(scoring.__all__) == PINNED
    assert all(hasattr(scoring, name) for name in scoring.__all__)


def test_scoring_error_is_a_byteleap_error() -> None:
    from byteleap.errors import ByteleapError

    assert issubclass(scoring.ScoringError, ByteleapError)
    assert scoring.ScoringError("x").reason == "scoring_error"
