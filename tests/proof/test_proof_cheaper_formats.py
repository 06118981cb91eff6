"""A worker that computes in a cheaper format than its profile fails verification.

The controls matter as much as the cheats: the same int8 arithmetic that fails a cuda-f16
challenge passes a cuda-i8 one, so the cheat is a real, cheaper computation and not a strawman.
"""

from __future__ import annotations

import math
import random

import numpy as np
import numpy.typing as npt
import pytest

from byteleap.proof import (
    ChallengeSpec,
    Cheat,
    Profile,
    Verdict,
    VerdictReason,
    answer_reveal,
    cheat_solution,
    commit,
    draw_reveal,
    full_a,
    full_b,
    issue_challenge,
    max_n,
    rows_of_a,
    value_bounds,
    verify,
)
from byteleap.proof.backends import Product, encode_rows, tree_of_rows
from byteleap.proof.challenge import Solution
from byteleap.proof.merkle import TreeKeys

from .conftest import hmac_check, hmac_sign

R = VerdictReason
I32 = npt.NDArray[np.int32]


def _verdict_of_rows(spec: ChallengeSpec, rows: I32, seed: int = 3) -> Verdict:
    """Commit to ``rows``, answer a fresh reveal from them and verify."""
    product = Product(
        tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), rows), lambda i: rows[i].tobytes()
    )
    solution = Solution(spec, product, 0.1)
    commitment = commit(solution, hmac_sign)
    request = draw_reveal(spec, commitment, rng=random.Random(seed))
    return verify(
        spec,
        commitment,
        request,
        answer_reveal(solution, request),
        now=spec.issued_at,
        verify_signature=hmac_check,
    )


def _spec(n: int, profile: Profile) -> ChallengeSpec:
    return issue_challenge(n, profile, now=0.0, ttl_s=60.0)


def _matrices(spec: ChallengeSpec) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    return full_a(spec.seed, spec.n, spec.profile), full_b(spec.seed, spec.n, spec.profile)


def test_old_symmetric_fp16_bound_fitted_int8() -> None:
    """The gap this closes: n·v² < 2²⁴ with one v gave v ≤ 127 from n = 1024 on."""
    assert math.isqrt(((1 << 24) - 1) // 1024) <= 127
    assert value_bounds(Profile.CUDA_F16, 1024).a > 255


@pytest.mark.adversarial
@pytest.mark.parametrize("n", [256, 1024])
def test_int8_cheat_fails_fp16_and_passes_int8(n: int) -> None:
    fp16 = _spec(n, Profile.CUDA_F16)
    cheat = cheat_solution(Cheat.INT8_INPUTS, fp16, random.Random(0))
    commitment = commit(cheat, hmac_sign)
    request = draw_reveal(fp16, commitment, rng=random.Random(1))
    verdict = verify(
        fp16,
        commitment,
        request,
        answer_reveal(cheat, request),
        now=0.0,
        verify_signature=hmac_check,
    )
    assert not verdict.ok and verdict.reason is R.WRONG_VALUE
    # Control: where int8 really is the profile's arithmetic, the same cheat is exact.
    i8 = _spec(n, Profile.CUDA_I8)
    honest_int8 = cheat_solution(Cheat.INT8_INPUTS, i8, random.Random(0))
    request = draw_reveal(i8, commit(honest_int8, hmac_sign), rng=random.Random(1))
    assert verify(
        i8,
        commit(honest_int8, hmac_sign),
        request,
        answer_reveal(honest_int8, request),
        now=0.0,
        verify_signature=hmac_check,
    ).ok


@pytest.mark.adversarial
@pytest.mark.parametrize("cast", ["saturate", "wrap"])
def test_torch_int8_tensor_arithmetic_fails_fp16(cast: str) -> None:
    """Real int8 × int8 → int32 arithmetic (torch._int_mm on CPU), inputs cast two ways."""
    torch = pytest.importorskip("torch")
    spec = _spec(512, Profile.CUDA_F16)
    a, b = _matrices(spec)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    if cast == "saturate":
        ta, tb = ta.clamp(-128, 127), tb.clamp(-128, 127)
    # int64 first: a float → int8 cast of out-of-range values is undefined, int64 → int8 wraps.
    product = torch._int_mm(ta.to(torch.int64).to(torch.int8), tb.to(torch.int64).to(torch.int8))
    assert _verdict_of_rows(spec, product.numpy().astype("<i4")).reason is R.WRONG_VALUE


@pytest.mark.adversarial
def test_fp8_inputs_fail_fp16() -> None:
    torch = pytest.importorskip("torch")
    spec = _spec(256, Profile.CUDA_F16)
    a, b = (torch.from_numpy(m).to(torch.float8_e4m3fn).to(torch.float64) for m in _matrices(spec))
    assert _verdict_of_rows(spec, encode_rows((a @ b).numpy())).reason is R.WRONG_VALUE


@pytest.mark.adversarial
def test_fp16_accumulation_fails_fp16() -> None:
    """fp16 inputs with an fp16 accumulator (2× the fp32-accumulate rate on consumer GPUs)."""
    spec = _spec(128, Profile.CUDA_F16)
    a, b = _matrices(spec)
    rows = np.empty((spec.n, spec.n), dtype="<i4")
    for i in range(spec.n):
        terms = a[i, :, None] * b  # exact products, summed in order down axis 0
        with np.errstate(over="ignore", invalid="ignore"):  # fp16 overflows to ±inf, then nan
            acc = np.cumsum(terms.astype(np.float16), axis=0, dtype=np.float16)[-1]
        rows[i] = np.clip(np.nan_to_num(acc.astype(np.float64)), -(2**31), 2**31 - 1)
    assert _verdict_of_rows(spec, rows).reason is R.WRONG_VALUE


@pytest.mark.adversarial
def test_int4_inputs_fail_int8() -> None:
    spec = _spec(256, Profile.CUDA_I8)
    a, b = _matrices(spec)
    rows = encode_rows(np.clip(a, -8, 7) @ np.clip(b, -8, 7))
    assert _verdict_of_rows(spec, rows).reason is R.WRONG_VALUE


@pytest.mark.adversarial
def test_float32_is_caught_at_the_largest_cpu_size() -> None:
    """cpu-f64 stops at the n where float32 accumulation still errs in a fair share of entries.

    Sampled estimate: the share of entries float32 gets right, over 48 rows of a real
    challenge, must make 256 correct samples (s·t) at most 2⁻⁴⁰ likely.
    """
    n = max_n(Profile.CPU_F64)
    spec = _spec(n, Profile.CPU_F64)
    b = full_b(spec.seed, n, spec.profile)
    a = rows_of_a(spec.seed, n, spec.profile, range(0, n, n // 48))
    exact = a @ b
    f32 = (a.astype(np.float32) @ b.astype(np.float32)).astype(np.float64)
    right = float((f32 == exact).mean())
    assert right ** (8 * 32) < 2.0**-40, right
