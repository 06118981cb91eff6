"""One epoch of the devnet chain's consensus: pure math over numpy arrays, no I/O.

Yuma consensus in spirit, computed exactly as follows (n neurons, validator i, miner j):

1. **Active stake.** A validator counts when it holds a permit, has stake > 0 and a
   non-zero weight row. Their stakes are normalised to ``S`` (sum 1); everyone else gets 0.
2. **Weights.** Each active row is normalised to sum 1 (``W``).
3. **Consensus.** For each miner j, ``C_j`` is the largest weight ``w`` such that the
   validators giving j at least ``w`` hold at least ``kappa`` of the active stake
   (a stake-weighted quantile; the stake-weighted median for kappa = 0.5). Exact, no
   bisection.
4. **Clipping.** ``W̄_ij = min(W_ij, C_j)``: weight above what a kappa-majority of stake
   agrees on is discarded, so a minority validator cannot lift a miner alone.
5. **Incentive.** ``R_j = Σ_i S_i W̄_ij``; ``I = R / ΣR``. If clipping removed every
   weight (no kappa-majority agrees on anything), the unclipped weights are used
   instead and ``consensus_reached`` is False — the subnet still pays by stake-weighted
   opinion rather than paying nobody.
6. **Dividends.** Bonds are instantaneous (no EMA, so an epoch depends only on current
   stake and weights — restarts and repeated epochs cannot drift):
   ``B_ij = S_i W̄_ij / Σ_k S_k W̄_kj``; ``D_i = Σ_j B_ij I_j``, which sums to 1 whenever
   incentive does.

No emission is minted into stake: devnet stake only changes through ``chain stake``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

# Cumulative stake sums are compared against kappa with this slack so that
# e.g. 0.1 + 0.2 + 0.2 still counts as reaching 0.5.
STAKE_SLACK = 1e-9


class EpochResult(NamedTuple):
    incentive: FloatArray
    dividends: FloatArray
    consensus: FloatArray
    consensus_reached: bool


def active_stake(weights: FloatArray, stake: FloatArray, permit: BoolArray) -> FloatArray:
    """Normalised stake of the validators that count this epoch (step 1)."""
    active = permit & (stake > 0) & (weights.sum(axis=1) > 0)
    masked = np.where(active, stake, 0.0)
    total = masked.sum()
    return masked / total if total > 0 else np.zeros_like(masked)


def normalise_rows(weights: FloatArray) -> FloatArray:
    sums = weights.sum(axis=1, keepdims=True)
    normalised: FloatArray = np.divide(weights, sums, out=np.zeros_like(weights), where=sums > 0)
    return normalised


def consensus(weights: FloatArray, stake: FloatArray, kappa: float) -> FloatArray:
    """Per-miner consensus weight ``C_j`` (step 3) for normalised ``stake``."""
    n_miners = weights.shape[1]
    result = np.zeros(n_miners)
    if stake.sum() <= 0:
        return result
    for j in range(n_miners):
        column = weights[:, j]
        order = np.argsort(-column, kind="stable")
        reached = np.cumsum(stake[order]) >= kappa - STAKE_SLACK
        # Equal weights form one group: the quantile is the value, never a position.
        first = int(np.argmax(reached))
        result[j] = column[order[first]]
    return result


def _incentive_and_bonds(weights: FloatArray, stake: FloatArray) -> tuple[FloatArray, FloatArray]:
    support = stake[:, None] * weights
    ranks = support.sum(axis=0)
    total = ranks.sum()
    incentive = ranks / total if total > 0 else np.zeros_like(ranks)
    bonds = np.divide(support, ranks[None, :], out=np.zeros_like(support), where=ranks > 0)
    return incentive, bonds


def epoch(weights: FloatArray, stake: FloatArray, permit: BoolArray, kappa: float) -> EpochResult:
    """Incentive and dividends of every neuron for one epoch.

    ``weights[i, j]`` is what neuron i set for neuron j (any non-negative scale),
    ``stake`` raw stake, ``permit`` the validator permits. All arrays index by uid.
    """
    if not 0 < kappa <= 1:
        raise ValueError(f"kappa must be in (0, 1], got {kappa}")
    n = stake.shape[0]
    if weights.shape != (n, n) or permit.shape != (n,):
        raise ValueError(
            f"shape mismatch: weights {weights.shape}, stake {n}, permit {permit.shape}"
        )
    if n == 0:
        empty = np.zeros(0)
        return EpochResult(empty, empty, empty, consensus_reached=False)
    s = active_stake(weights, stake, permit)
    w = normalise_rows(np.where(s[:, None] > 0, weights, 0.0))
    c = consensus(w, s, kappa)
    clipped = np.minimum(w, c[None, :])
    reached = bool((s[:, None] * clipped).sum() > 0)
    incentive, bonds = _incentive_and_bonds(clipped if reached else w, s)
    dividends = bonds @ incentive
    return EpochResult(incentive, dividends, c, consensus_reached=reached)
