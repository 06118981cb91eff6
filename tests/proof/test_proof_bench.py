"""Smoke test of the challenge benchmark at a small n (no timing assertions)."""

from __future__ import annotations

import json

import pytest

from byteleap.proof import Profile
from byteleap.proof.bench import bench_profile, run_challenge_bench

FIELDS = {
    "n",
    "profile",
    "matmul_s",
    "pipeline_s",
    "pipeline_over_matmul",
    "pipeline_over_matmul_paired_median",
    "load_avg_1m",
    "verify_ms",
    "full_recompute_ms",
    "verify_speedup",
    "synthetic_leaves",
}


@pytest.mark.parametrize("verify_only", [False, True])
def test_bench_reports_every_field(verify_only: bool) -> None:
    result = run_challenge_bench(96, "cpu-f64", verify_only=verify_only, repeats=1)
    assert FIELDS <= result.keys()
    assert result["verify_ok"] is True
    assert result["synthetic_leaves"] is verify_only
    assert (result["matmul_s"] is None) is verify_only
    json.dumps(result)


def test_bench_emulates_gpu_profiles_on_cpu() -> None:
    result = run_challenge_bench(64, "cuda-i8", repeats=1)
    assert result["verify_ok"] is True and result["emulated_on_cpu"] is True


def test_auto_profile_follows_cpu_f64_size_limit() -> None:
    assert bench_profile(2000, "auto") is Profile.CPU_F64
    assert bench_profile(32768, "auto") is Profile.CUDA_F16
    assert bench_profile(64, "cuda-i8") is Profile.CUDA_I8
