"""Smoke runs of the network simulation at small scale (no timing asserted)."""

from __future__ import annotations

import math

import pytest

from byteleap.scoring import ScoringParams
from byteleap.scoring.simulation import CHEATERS, MinerType, run_network_simulation


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    return run_network_simulation(8, seed=3, workers_per_miner=1)


def test_goals_hold(result: dict[str, object]) -> None:
    shares = result["shares"]
    assert isinstance(shares, dict) and set(shares) == {k.value for k in MinerType}
    assert math.isclose(sum(shares.values()), 1.0)
    assert result["cheater_share"] == sum(shares[k.value] for k in CHEATERS)
    assert result["cheater_share"] <= 0.01  # type: ignore[operator]
    assert result["steady_over_spiky"] > 1  # type: ignore[operator]
    assert shares["ip-hopping"] == 0.0
    assert 0 < shares["half-offline"] < shares["spiky"] < shares["honest"]


def test_cheats_are_caught_by_the_real_verifier(result: dict[str, object]) -> None:
    outcomes = result["outcomes"]
    assert isinstance(outcomes, dict)
    for cheat in ("lazy", "low-precision"):
        assert outcomes[f"{cheat}:wrong_answer"] == 8
    assert outcomes["partial-compute:wrong_answer"] >= 7
    assert outcomes.get("sparse-error:wrong_answer", 0) >= 1
    assert outcomes["honest:ok"] == 8 and "honest:wrong_answer" not in outcomes


def test_same_seed_same_result(result: dict[str, object]) -> None:
    assert run_network_simulation(8, seed=3, workers_per_miner=1) == result


def test_without_the_ban_a_sparse_cheat_would_earn() -> None:
    lenient = ScoringParams(wrong_answer_ban_min=0, failure_weight=0)
    got = run_network_simulation(8, seed=3, workers_per_miner=1, params=lenient)
    assert got["shares"]["sparse-error"] > 0.01
