"""Properties of the devnet chain's epoch (consensus clipping, incentive, dividends)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from byteleap.chain.local import yuma

KAPPA = 0.5


@st.composite
def subnets(draw: st.DrawFn, min_n: int = 1, max_n: int = 8) -> tuple:
    n = draw(st.integers(min_n, max_n))
    unit = st.floats(0, 1, allow_nan=False).map(lambda x: 0.0 if x < 0.3 else x)
    weights = draw(arrays(np.float64, (n, n), elements=unit))
    stake = draw(arrays(np.float64, (n,), elements=st.floats(0, 1000, allow_nan=False)))
    permit = draw(arrays(np.bool_, (n,)))
    return weights, stake, permit


def test_hand_computed_epoch() -> None:
    weights = np.array([[0, 0, 0.75, 0.25], [0, 0, 0.25, 0.75], [0] * 4, [0] * 4], dtype=float)
    stake = np.array([3.0, 1.0, 0.0, 0.0])
    permit = np.array([True, True, False, False])
    result = yuma.epoch(weights, stake, permit, KAPPA)
    np.testing.assert_allclose(result.consensus, [0, 0, 0.75, 0.25])
    np.testing.assert_allclose(result.incentive, [0, 0, 5 / 7, 2 / 7])
    np.testing.assert_allclose(result.dividends, [6 / 7, 1 / 7, 0, 0])
    assert result.consensus_reached


def test_no_validators_no_incentive() -> None:
    weights = np.ones((3, 3))
    result = yuma.epoch(weights, np.zeros(3), np.ones(3, dtype=bool), KAPPA)
    assert result.incentive.sum() == 0 and result.dividends.sum() == 0


def test_disagreement_without_majority_falls_back_to_raw_weights() -> None:
    # Three equal validators, each backing a different miner: no miner has a majority.
    weights = np.zeros((6, 6))
    for v in range(3):
        weights[v, 3 + v] = 1.0
    stake = np.array([1.0, 1, 1, 0, 0, 0])
    result = yuma.epoch(weights, stake, stake > 0, KAPPA)
    assert not result.consensus_reached
    np.testing.assert_allclose(result.incentive, [0, 0, 0, 1 / 3, 1 / 3, 1 / 3])


def test_bad_shapes_and_kappa_are_refused() -> None:
    with pytest.raises(ValueError, match="shape"):
        yuma.epoch(np.zeros((2, 3)), np.zeros(2), np.zeros(2, dtype=bool), KAPPA)
    with pytest.raises(ValueError, match="kappa"):
        yuma.epoch(np.zeros((2, 2)), np.zeros(2), np.zeros(2, dtype=bool), 0.0)


@given(subnets())
@settings(max_examples=200, deadline=None)
def test_incentive_and_dividends_sum_to_one_when_any_weight_is_set(subnet: tuple) -> None:
    weights, stake, permit = subnet
    result = yuma.epoch(weights, stake, permit, KAPPA)
    active = yuma.active_stake(weights, stake, permit) > 0
    assert (result.incentive >= 0).all() and (result.dividends >= 0).all()
    if active.any():
        assert result.incentive.sum() == pytest.approx(1.0)
        assert result.dividends.sum() == pytest.approx(1.0)
    else:
        assert result.incentive.sum() == 0 and result.dividends.sum() == 0
    # Only validators that counted earn dividends.
    assert (result.dividends[~active] == 0).all()


@given(subnets(min_n=2), st.data())
@settings(max_examples=200, deadline=None)
def test_consensus_ignores_a_minority_validators_excess(subnet: tuple, data: st.DataObject) -> None:
    weights, stake, permit = subnet
    s = yuma.active_stake(weights, stake, permit)
    # Within STAKE_SLACK of kappa counts as reaching it (float rounding of normalised stake):
    # hypothesis found 0.5 - 1e-16 of stake, alone, setting a consensus, as it should.
    minority = [i for i in range(len(s)) if 0 < s[i] < KAPPA - yuma.STAKE_SLACK]
    assume(minority)
    i = data.draw(st.sampled_from(minority))
    w = yuma.normalise_rows(np.where(s[:, None] > 0, weights, 0.0))
    c = yuma.consensus(w, s, KAPPA)
    others = np.delete(w, i, axis=0)
    # Whatever validator i says, no miner's consensus exceeds what some other validator gave.
    assert (c <= others.max(axis=0) + 1e-12).all()


@given(
    st.integers(2, 6),
    st.floats(0.01, 0.45),
    st.lists(st.floats(0.05, 1), min_size=1, max_size=5),
    st.data(),
)
@settings(max_examples=100, deadline=None)
def test_outlier_cannot_pay_a_miner_nobody_else_backs(
    n_honest: int, outlier_share: float, honest_row: list[float], data: st.DataObject
) -> None:
    n_validators = n_honest + 1
    miners = len(honest_row) + 1  # the last miner is the outlier's favourite
    n = n_validators + miners
    weights = np.zeros((n, n))
    weights[:n_honest, n_validators : n - 1] = honest_row
    weights[n_honest, n - 1] = 1.0
    honest_stake = data.draw(st.lists(st.floats(0.1, 10), min_size=n_honest, max_size=n_honest))
    honest_total = sum(honest_stake)
    outlier_stake = outlier_share / (1 - outlier_share) * honest_total
    stake = np.zeros(n)
    stake[:n_honest] = honest_stake
    stake[n_honest] = outlier_stake
    result = yuma.epoch(weights, stake, stake > 0, KAPPA)
    assert result.consensus_reached
    assert result.incentive[n - 1] == 0
    expected = np.array(honest_row) / sum(honest_row)
    np.testing.assert_allclose(result.incentive[n_validators : n - 1], expected, atol=1e-9)
    # It backed nobody the majority backed, so it earns no dividends either.
    assert result.dividends[n_honest] == 0


@given(subnets(), st.randoms(use_true_random=False))
@settings(max_examples=150, deadline=None)
def test_permutation_invariance(subnet: tuple, rnd) -> None:
    weights, stake, permit = subnet
    n = len(stake)
    perm = np.array(rnd.sample(range(n), n))
    base = yuma.epoch(weights, stake, permit, KAPPA)
    moved = yuma.epoch(weights[np.ix_(perm, perm)], stake[perm], permit[perm], KAPPA)
    np.testing.assert_allclose(moved.incentive, base.incentive[perm], atol=1e-9)
    np.testing.assert_allclose(moved.dividends, base.dividends[perm], atol=1e-9)
    assert moved.consensus_reached == base.consensus_reached
