"""The CPU product commits to exactly the rows of A·B, for every profile and odd sizes."""

from __future__ import annotations

import numpy as np
import pytest

from byteleap.proof import (
    Backend,
    Profile,
    cols_of_b,
    issue_challenge,
    rows_of_a,
    run_target,
    solve,
)
from byteleap.proof.backends import tree_of_rows
from byteleap.proof.cheats import exact_rows
from byteleap.proof.merkle import TreeKeys


@pytest.mark.parametrize("n", [1, 2, 455, 1031])  # 1031² entries: two generation threads
@pytest.mark.parametrize("profile", list(Profile))
def test_numpy_product_matches_the_exact_product(n: int, profile: Profile) -> None:
    spec = issue_challenge(n, profile, now=0.0, ttl_s=10.0)
    solution = solve(spec)
    keys = TreeKeys.for_challenge(spec.challenge_id)
    assert solution.root == tree_of_rows(keys, exact_rows(spec)).root
    # Sampled rows against an integer product built from single-slice generation.
    picks = sorted({0, n // 4, n // 2, n - 1})
    b_columns = cols_of_b(spec.seed, n, profile, range(n)).astype(np.int64)
    expected = rows_of_a(spec.seed, n, profile, picks).astype(np.int64) @ b_columns.T
    for k, i in enumerate(picks):
        assert solution.product.row_bytes(i) == expected[k].astype("<i4").tobytes()


def test_run_target_puts_only_cuda_profiles_on_a_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    gpu_spec = issue_challenge(64, Profile.CUDA_F16, now=0.0, ttl_s=10.0)
    cpu_spec = issue_challenge(64, Profile.CPU_F64, now=0.0, ttl_s=10.0)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert run_target(gpu_spec, "auto") == (Backend.TORCH, "cuda")
    assert run_target(gpu_spec, "torch") == (Backend.TORCH, "cuda")
    assert run_target(gpu_spec, "numpy") == (Backend.NUMPY, "cpu")
    assert run_target(cpu_spec, "auto") == (Backend.NUMPY, "cpu")
    assert run_target(cpu_spec, "torch") == (Backend.TORCH, "cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert run_target(gpu_spec, "auto") == (Backend.NUMPY, "cpu")
    assert run_target(gpu_spec, "torch") == (Backend.TORCH, "cpu")
