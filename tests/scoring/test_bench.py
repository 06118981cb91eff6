from __future__ import annotations

from byteleap.scoring.bench import run_scoring_bench


def test_bench_scores_a_small_network() -> None:
    result = run_scoring_bench(250, 2)
    assert result["workers"] == 250 and result["miners"] == 3
    assert result["bucket_flags"] == 250 * 24
    assert result["records"] == 250 * 45
    assert result["weights"] == 3 and abs(result["weight_sum"] - 1.0) < 1e-9
    assert result["seconds"] >= 0
