from __future__ import annotations

import pytest
from pydantic import ValidationError

from byteleap.scoring import ScoringParams


def test_defaults_are_the_designs() -> None:
    p = ScoringParams()
    assert (p.window_min, p.round_interval_s, p.throughput_quantile) == (180.0, 240.0, 0.5)
    assert (p.availability_hours, p.bucket_s, p.top_k_workers) == (169.0, 300.0, 100)
    assert (p.lease_weight, p.challenge_weight) == (0.7, 0.3)
    assert p.availability_buckets == 169 * 12
    # 45 rounds in 180 min at 240 s, full participation from 90 % of them.
    assert p.expected_successes == pytest.approx(40.5)


@pytest.mark.parametrize(
    "bad",
    [
        {"window_min": 0},
        {"throughput_quantile": 0},
        {"throughput_quantile": 1.5},
        {"ip_change_factor": 2},
        {"top_k_workers": 0},
        {"lease_weight": 0, "challenge_weight": 0},
        {"lease_weight": -0.1},
        {"no_such_param": 1},
    ],
)
def test_rejects_bad_params(bad: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        ScoringParams(**bad)  # type: ignore[arg-type]


def test_params_are_frozen() -> None:
    with pytest.raises(ValidationError):
        ScoringParams().top_k_workers = 5  # type: ignore[misc]
