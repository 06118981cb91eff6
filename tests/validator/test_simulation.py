"""The network simulation at small scale: every cheat, the real rules (no timing asserted)."""

from __future__ import annotations

import math

import pytest

from byteleap.scoring import ScoringParams
from byteleap.validator.simulation import CHEATERS, MinerType, run_network_simulation

ROUNDS = 8


@pytest.fixture(scope="module")
def result() -> dict[str, object]:
    return run_network_simulation(ROUNDS, seed=3, workers_per_miner=64)


def test_goals_hold(result: dict[str, object]) -> None:
    shares = result["shares"]
    assert isinstance(shares, dict) and set(shares) == {k.value for k in MinerType}
    assert math.isclose(sum(shares.values()), 1.0)
    assert result["cheater_share"] == pytest.approx(sum(shares[k.value] for k in CHEATERS))
    assert result["cheater_share"] <= 0.01  # type: ignore[operator]
    assert result["steady_over_spiky"] > 1  # type: ignore[operator]
    assert shares["ip-hopping"] == 0.0
    assert 0 < shares["half-offline"] < shares["spiky"] < shares["honest"]


def test_no_cheat_earns_more_than_its_real_hardware(result: dict[str, object]) -> None:
    credit, weight = result["credit_ratio"], result["weight_over_hardware"]
    assert isinstance(credit, dict) and isinstance(weight, dict)
    for cheat in CHEATERS:
        assert credit[cheat.value] <= 1.1, cheat
        assert weight[cheat.value] <= 1.1, cheat
    # Honest fleets, one model or four, keep what their cards do.
    assert credit["honest"] >= 0.95
    assert credit["honest-mixed"] >= 0.95


def test_each_claim_cheat_is_stopped_by_its_rule(result: dict[str, object]) -> None:
    outcomes, shares = result["outcomes"], result["shares"]
    assert isinstance(outcomes, dict) and isinstance(shares, dict)
    # One card behind eight workers: one pass a round, the other seven time out.
    assert outcomes["multiplex:ok"] == ROUNDS
    assert outcomes["multiplex:timeout"] == 7 * ROUNDS
    # A card slower than its claim misses every deadline sized for the claim.
    assert outcomes["model-spoof:timeout"] == ROUNDS and shares["model-spoof"] == 0.0
    # A refused reveal is a failure (never abandoned), so refusing earns nothing.
    assert "refuse-reveal:ok" not in outcomes and shares["refuse-reveal"] == 0.0
    # One box under two hotkeys: both flagged, neither earns.
    assert shares["shared-hotkeys"] == 0.0
    # A claim no real card matches is never challenged, so its self-paid lease counts for
    # nothing; an honest miner washing its own worker gains less than it pays.
    assert shares["wash-lease"] == 0.0
    assert not any(key.startswith("wash-lease:") for key in outcomes)
    assert 0 < result["wash_gain_over_cost"] <= 1.0  # type: ignore[operator]


def test_product_cheats_are_caught_by_the_real_verifier(result: dict[str, object]) -> None:
    outcomes = result["outcomes"]
    assert isinstance(outcomes, dict)
    for cheat in ("lazy", "low-precision"):
        assert outcomes[f"{cheat}:wrong_answer"] == ROUNDS
    assert outcomes["partial-compute:wrong_answer"] >= ROUNDS - 1
    assert outcomes.get("sparse-error:wrong_answer", 0) >= 1
    assert "honest:wrong_answer" not in outcomes


def test_same_seed_same_result(result: dict[str, object]) -> None:
    assert run_network_simulation(ROUNDS, seed=3, workers_per_miner=64) == result


def test_without_the_ban_a_sparse_cheat_would_earn() -> None:
    lenient = ScoringParams(wrong_answer_ban_min=0, failure_weight=0)
    got = run_network_simulation(ROUNDS, seed=3, workers_per_miner=4, params=lenient)
    assert got["shares"]["sparse-error"] > 0.01
