"""``byteleap bench challenge``: time the worker pipeline against a bare product, and the
validator's verification against recomputing the whole product in int64."""

from __future__ import annotations

import hashlib
import hmac
import os
import platform
import statistics
import time
from collections.abc import Callable

import numpy as np

from byteleap.proof.backends import AUTO, run_target
from byteleap.proof.challenge import (
    Solution,
    answer_reveal,
    commit,
    draw_reveal,
    issue_challenge,
    solve,
)
from byteleap.proof.matrices import full_a, full_b
from byteleap.proof.messages import (
    ChallengeSpec,
    Commitment,
    parse_reveal,
    reveal_size_limit,
)
from byteleap.proof.profiles import Profile, max_n, value_bounds
from byteleap.proof.synthetic import synthesize
from byteleap.proof.verify import ReplayGuard, verify

# Above this n the int64 recompute is timed at this size and scaled by n³.
_FULL_RECOMPUTE_MAX_N = 2048
_FULL_RECOMPUTE_SAMPLE_N = 512
_HMAC_KEY = os.urandom(32)
# OpenBLAS threads busy-wait for ~0.1 s of CPU after a product before they sleep; back to back,
# each timed run would share its cores with the previous run's spinning threads. A worker's
# challenges arrive seconds apart, so every run starts from parked threads.
_SETTLE_S = 0.2
AUTO_PROFILE = "auto"


def _sign(payload: bytes) -> bytes:
    return hmac.new(_HMAC_KEY, payload, hashlib.sha256).digest()


def _check(payload: bytes, signature: bytes) -> bool:
    return hmac.compare_digest(_sign(payload), signature)


def _best(repeats: int, action: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        action()
        best = min(best, time.perf_counter() - started)
    return best


def _full_recompute_s(spec: ChallengeSpec) -> tuple[float, bool]:
    n = min(spec.n, _FULL_RECOMPUTE_MAX_N)
    if spec.n > _FULL_RECOMPUTE_MAX_N:
        n = _FULL_RECOMPUTE_SAMPLE_N
    a = full_a(spec.seed, n, spec.profile).astype(np.int64)
    b = full_b(spec.seed, n, spec.profile).astype(np.int64)
    seconds = _best(1, lambda: a @ b)
    return seconds * (spec.n / n) ** 3, n != spec.n


def _worker_side(spec: ChallengeSpec, repeats: int) -> tuple[dict[str, object], Solution]:
    a = full_a(spec.seed, spec.n, spec.profile)
    b = full_b(spec.seed, spec.n, spec.profile)
    matmuls: list[float] = []
    pipelines: list[float] = []
    solution = solve(spec)  # warm-up: first-touch page faults and thread start-up
    for k in range(max(1, repeats)):
        # Paired, alternating order: other processes' load tends to hit both halves of a pair.
        for side in ("matmul", "pipeline") if k % 2 == 0 else ("pipeline", "matmul"):
            time.sleep(_SETTLE_S)
            if side == "matmul":
                matmuls.append(_best(1, lambda: a @ b))
            else:
                solution = solve(spec)
                pipelines.append(solution.compute_s)
    pairs = [p / m for p, m in zip(pipelines, matmuls, strict=True)]
    return (
        {
            "matmul_s": min(matmuls),
            "pipeline_s": min(pipelines),
            "pipeline_over_matmul": min(pipelines) / min(matmuls),
            "pipeline_over_matmul_paired_median": statistics.median(pairs),
        },
        solution,
    )


def _cuda_worker_side(spec: ChallengeSpec, repeats: int) -> tuple[dict[str, object], Solution]:
    """The whole CUDA challenge (generate, multiply, hash, tree; ``solve`` on "cuda") against
    a bare ``torch.mm`` (fp16 in and out) or ``torch._int_mm`` (column-major B) of the same
    size, each timed between device synchronisations."""
    import torch

    from byteleap.proof import triton_philox
    from byteleap.proof.cuda_backend import input_dtype
    from byteleap.proof.matrices import STREAM_A, STREAM_B

    device = torch.device("cuda")
    bounds = value_bounds(spec.profile, spec.n)
    dtype = input_dtype(spec.profile)
    a = triton_philox.generate(spec.seed, STREAM_A, spec.n, bounds.a, dtype, device)
    b = triton_philox.generate(spec.seed, STREAM_B, spec.n, bounds.b, dtype, device).T
    bare = torch._int_mm if spec.profile is Profile.CUDA_I8 else torch.mm

    def synchronised(action: Callable[[], object]) -> float:
        torch.cuda.synchronize()
        started = time.perf_counter()
        action()
        torch.cuda.synchronize()
        return time.perf_counter() - started

    matmuls: list[float] = []
    pipelines: list[float] = []
    solution = solve(spec, "torch", "cuda")  # warm-up: kernel compilation, cuBLAS handles
    synchronised(lambda: bare(a, b))
    for _ in range(max(1, repeats)):
        matmuls.append(synchronised(lambda: bare(a, b)))
        del solution  # its product would double the device memory the next one needs
        solution = solve(spec, "torch", "cuda")  # its tree's copy to the host synchronises
        pipelines.append(solution.compute_s)
    flop = 2 * spec.n**3
    pairs = [p / m for p, m in zip(pipelines, matmuls, strict=True)]
    return (
        {
            "backend": "torch",
            "device": torch.cuda.get_device_name(),
            "emulated_on_cpu": False,
            "matmul_s": min(matmuls),
            "pipeline_s": min(pipelines),
            "pipeline_over_matmul": min(pipelines) / min(matmuls),
            "pipeline_over_matmul_paired_median": statistics.median(pairs),
            "matmul_tflops": flop / min(matmuls) / 1e12,
            "pipeline_tflops": flop / min(pipelines) / 1e12,
        },
        solution,
    )


def bench_profile(n: int, profile: str) -> Profile:
    """``auto``: cpu-f64 where it accepts n, else cuda-f16 (GPU sizes; the validator's
    verification is the same float64 CPU work for every profile)."""
    if profile != AUTO_PROFILE:
        return Profile(profile)
    return Profile.CPU_F64 if n <= max_n(Profile.CPU_F64) else Profile.CUDA_F16


def run_challenge_bench(
    n: int, profile: str = AUTO_PROFILE, verify_only: bool = False, repeats: int = 9
) -> dict[str, object]:
    """Measure one challenge size; returns the JSON object ``byteleap bench challenge`` prints."""
    spec = issue_challenge(n, bench_profile(n, profile), now=time.time(), ttl_s=3600.0)
    result: dict[str, object] = {
        "n": n,
        "profile": str(spec.profile),
        "backend": "numpy",
        "device": "cpu",
        "emulated_on_cpu": spec.profile is not Profile.CPU_F64,
        "synthetic_leaves": verify_only,
        "leaf_hash": "blake3",
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    if verify_only:
        result.update(
            matmul_s=None,
            pipeline_s=None,
            pipeline_over_matmul=None,
            pipeline_over_matmul_paired_median=None,
        )
        request = draw_reveal(
            spec,
            Commitment(
                challenge_id=spec.challenge_id, root=bytes(32), compute_s=0.0, signature=b""
            ),
        )
        # Real values at the sampled entries, random leaves and zero entries elsewhere.
        synthetic = synthesize(spec, request)
        commitment, reveal = synthetic.commitment(_sign), synthetic.reveal()
    else:
        # Where a worker would run it: a CUDA profile on the GPU when there is one.
        on_gpu = run_target(spec, AUTO)[1] == "cuda"
        worker_side = _cuda_worker_side if on_gpu else _worker_side
        timings, solution = worker_side(spec, repeats)
        result.update(timings)
        commitment = commit(solution, _sign)
        request = draw_reveal(spec, commitment)
        reveal = answer_reveal(solution, request)
    wire = reveal.model_dump_json().encode()
    limit = reveal_size_limit(n, len(request.rows), len(request.cols))
    parse_s = _best(repeats, lambda: parse_reveal(wire, max_bytes=limit))
    verdicts = []

    def one_verify() -> None:
        verdicts.append(
            verify(
                spec,
                commitment,
                request,
                reveal,
                now=spec.issued_at,
                verify_signature=_check,
                replay_guard=ReplayGuard(),
            )
        )

    verify_s = _best(max(repeats, 5), one_verify)
    full_s, estimated = _full_recompute_s(spec)
    result.update(
        verify_ok=all(v.ok for v in verdicts),
        verify_ms=verify_s * 1e3,
        parse_reveal_ms=parse_s * 1e3,
        reveal_bytes=len(wire),
        full_recompute_ms=full_s * 1e3,
        full_recompute_estimated=estimated,
        verify_speedup=full_s / verify_s,
        s=len(request.rows),
        t=len(request.cols),
    )
    return result
