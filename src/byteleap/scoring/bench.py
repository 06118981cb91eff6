"""Benchmark of the pure scoring path: synthetic columns in, ScoreBoard and weights out.

Inputs are generated before the clock starts; the timed part is what the validator runs every
weight interval once the store has handed over its rows: counting online buckets from a
workers × buckets matrix, scoring every worker and miner, and normalising the weights.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from byteleap.scoring.availability import online_bucket_counts
from byteleap.scoring.board import score_columns
from byteleap.scoring.challenge import ChallengeColumns
from byteleap.scoring.params import ScoringParams
from byteleap.scoring.records import LeaseRevenue, WorkerKey
from byteleap.scoring.weights import normalise_weights

__all__ = ["run_scoring_bench"]

_WORKERS_PER_MINER = 100


def _synthetic_columns(
    n_workers: int, params: ScoringParams, now: float, rng: np.random.Generator
) -> ChallengeColumns:
    rounds = int(params.window_s // params.round_interval_s)
    worker = np.repeat(np.arange(n_workers, dtype=np.intp), rounds)
    at = now - np.tile(np.arange(rounds, dtype=np.float64), n_workers) * params.round_interval_s
    ok = rng.random(worker.size) < 0.95
    wrong = ~ok & (rng.random(worker.size) < 0.01)
    base = rng.uniform(1e13, 1e15, n_workers)
    throughput = np.where(ok, base[worker] * rng.uniform(0.9, 1.1, worker.size), 0.0)
    return ChallengeColumns(worker=worker, at=at, ok=ok, wrong=wrong, throughput=throughput)


def run_scoring_bench(workers: int, hours: int, *, seed: int = 0) -> dict[str, Any]:
    """Time one full score + weights computation for ``workers`` over ``hours`` of buckets."""
    params = ScoringParams(availability_hours=float(hours))
    rng = np.random.default_rng(seed)
    now = 1_700_000_000.0
    n_miners = max(1, -(-workers // _WORKERS_PER_MINER))
    keys: list[WorkerKey] = [(f"miner-{i % n_miners:04d}", f"w{i:06d}") for i in range(workers)]
    columns = _synthetic_columns(workers, params, now, rng)
    online = rng.random((workers, params.availability_buckets), dtype=np.float32) < 0.97
    ip_changes = rng.poisson(0.2, workers).astype(np.int64)
    leases = [LeaseRevenue(f"miner-{i:04d}", 10.0 + i, now - 60.0) for i in range(n_miners // 4)]
    uids = {f"miner-{i:04d}": i for i in range(n_miners)}

    started = time.perf_counter()
    counts = online_bucket_counts(online)
    board = score_columns(keys, columns, counts, ip_changes, leases, now=now, params=params)
    weights = normalise_weights(board.final_scores(), uids)
    seconds = time.perf_counter() - started
    return {
        "workers": workers,
        "hours": hours,
        "miners": n_miners,
        "records": int(columns.worker.size),
        "bucket_flags": int(online.size),
        "seconds": round(seconds, 4),
        "weights": len(weights),
        "weight_sum": round(sum(weights.values()), 9),
    }
