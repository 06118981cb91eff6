from __future__ import annotations

import math

import pytest

from byteleap.scoring import ScoringError, normalise_weights


def test_normalised_to_one_over_uids() -> None:
    w = normalise_weights({"a": 3.0, "b": 1.0, "c": 0.0}, {"a": 7, "b": 2, "c": 5})
    assert w == {2: 0.25, 7: 0.75}
    assert list(w) == [2, 7]


def test_hotkeys_without_uid_are_dropped_before_normalising() -> None:
    assert normalise_weights({"a": 1.0, "gone": 9.0}, {"a": 0}) == {0: 1.0}


@pytest.mark.parametrize(
    "scores", [{}, {"a": 0.0, "b": 0.0}, {"gone": 5.0}], ids=["empty", "zeros", "no-uid"]
)
def test_all_zero_gives_no_weights(scores: dict[str, float]) -> None:
    assert normalise_weights(scores, {"a": 0, "b": 1}) == {}


@pytest.mark.parametrize("bad", [math.nan, math.inf, -1.0])
def test_refuses_nan_inf_and_negative(bad: float) -> None:
    with pytest.raises(ScoringError):
        normalise_weights({"a": 1.0, "b": bad}, {"a": 0, "b": 1})


def test_tiny_scores_still_sum_to_one() -> None:
    w = normalise_weights(
        {str(i): 1e-300 * (i + 1) for i in range(10)}, {str(i): i for i in range(10)}
    )
    assert math.fsum(w.values()) == pytest.approx(1.0)
    assert all(math.isfinite(v) for v in w.values())
