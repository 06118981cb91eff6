"""A small run of `byteleap bench gateway` (its speed is measured by `make bench`)."""

from __future__ import annotations

from byteleap.cloud.gateway.bench import run_gateway_bench


async def test_gateway_bench_runs_every_job_and_reports() -> None:
    result = await run_gateway_bench(workers=20, jobs=12, rate_per_s=30)
    assert result["simulated_workers"] == 20  # labelled: the miners are simulated
    assert result["succeeded"] == 12
    assert 0 < result["submit_to_running_p50_s"] <= result["submit_to_running_p99_s"]
    assert result["jobs_per_min"] > 0
