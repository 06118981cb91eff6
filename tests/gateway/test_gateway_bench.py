"""A small run of `byteleap bench gateway` (its speed is measured by `make bench`)."""

from __future__ import annotations

import pytest

from byteleap.devnet.gateway_bench import run_gateway_bench, run_gateway_ramp


async def test_gateway_bench_runs_every_job_and_reports() -> None:
    result = await run_gateway_bench(workers=20, jobs=12, rate_per_s=30)
    assert result["simulated_workers"] == 20  # labelled: the miners are simulated
    assert result["succeeded"] == 12
    assert 0 < result["submit_to_running_p50_s"] <= result["submit_to_running_p99_s"]
    assert result["jobs_per_min"] > 0


@pytest.mark.postgres
async def test_gateway_bench_over_postgresql_with_two_replicas_ramps_to_a_ceiling() -> None:
    result = await run_gateway_ramp(20, [5, 10], 2.0, store="postgres", replicas=2)
    assert result["replicas"] == 2 and result["store"] == "postgres"
    assert [s["submit_rate_per_s"] for s in result["steps"]][:1] == [5]
    assert all(s["succeeded"] == s["jobs"] for s in result["steps"])  # none lost, none twice
    # The ceiling is the fastest step that kept p99 within 1 s (how fast is the machine's).
    kept = [s["submit_rate_per_s"] for s in result["steps"] if s["submit_to_running_p99_s"] <= 1]
    assert result["ceiling_jobs_per_min"] == (round(max(kept) * 60) if kept else None)


async def test_replicas_need_postgresql() -> None:
    with pytest.raises(ValueError, match="PostgreSQL"):
        await run_gateway_bench(workers=2, jobs=1, rate_per_s=1, replicas=2)
