"""The Triton kernels of the CUDA path, bit for bit against numpy's streams, the ``blake3``
package and ``MerkleTree``: run on the CPU by Triton's interpreter, and compiled for sm_90
(Hopper) without a GPU so a kernel that only the interpreter accepts fails here too."""

from __future__ import annotations

import importlib.util
import os
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import blake3
import numpy as np
import pytest

if os.environ.get("BYTELEAP_REQUIRE_TRITON") == "1":
    import torch
    import triton
else:
    torch = pytest.importorskip("torch", reason="the CUDA path needs torch")
    triton = pytest.importorskip("triton", reason="the CUDA path's kernels need triton")

import byteleap.proof
from byteleap.proof import (
    Profile,
    RevealRequest,
    answer_reveal,
    cols_of_b,
    commit,
    draw_reveal,
    full_a,
    full_b_columns,
    issue_challenge,
    solve,
    verify,
)
from byteleap.proof.challenge import Solution
from byteleap.proof.matrices import STREAM_A, STREAM_B
from byteleap.proof.merkle import MerkleTree, TreeKeys, row_digest
from byteleap.proof.profiles import value_bounds

from .conftest import hmac_check, hmac_sign

_PROOF = Path(__file__).parents[2] / "src" / "byteleap" / "proof"
_CPU = torch.device("cpu")


def _interpreted(name: str) -> ModuleType:
    """A private copy of a kernel module whose @triton.jit functions run in the interpreter
    (the switch is read when the decorator runs)."""
    before = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1"
    try:
        spec = importlib.util.spec_from_file_location(f"_interpreted_{name}", _PROOF / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        if before is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = before
    return module


@pytest.fixture(scope="module")
def philox() -> Iterator[ModuleType]:
    yield _interpreted("triton_philox")


@pytest.fixture(scope="module")
def hashing() -> Iterator[ModuleType]:
    yield _interpreted("triton_blake3")


_INPUT_DTYPES = {
    Profile.CUDA_F16: torch.float16,
    Profile.CUDA_I8: torch.int8,
    Profile.CPU_F64: torch.float64,
}


@pytest.mark.parametrize("n", [1, 5, 37, 129])  # 129² entries: several programs, a ragged tail
@pytest.mark.parametrize("profile", list(Profile))
def test_generated_matrices_are_numpys_streams(
    philox: ModuleType, profile: Profile, n: int
) -> None:
    seed = os.urandom(32)
    bounds = value_bounds(profile, n)
    dtype = _INPUT_DTYPES[profile]
    a = philox.generate(seed, STREAM_A, n, bounds.a, dtype, _CPU)
    b_columns = philox.generate(seed, STREAM_B, n, bounds.b, dtype, _CPU)
    assert a.dtype == dtype
    assert (a.double().numpy() == full_a(seed, n, profile)).all()
    assert (b_columns.double().numpy() == full_b_columns(seed, n, profile)).all()
    assert (b_columns[[0, n - 1]].double().numpy() == cols_of_b(seed, n, profile, [0, n - 1])).all()


def test_generation_refuses_a_short_seed(philox: ModuleType) -> None:
    with pytest.raises(ValueError, match="seed"):
        philox.generate(os.urandom(16), STREAM_A, 4, 3, torch.float16, _CPU)


# 1 word: one short block; 17: two blocks; 256: exactly one chunk; 257: a one-word second
# chunk; 1000: four chunks, so two parent levels.
@pytest.mark.parametrize("n_words", [1, 17, 256, 257, 1000])
def test_blake3_rows_match_blake3(hashing: ModuleType, n_words: int) -> None:
    rows = torch.randint(-(2**31), 2**31 - 1, (3, n_words), dtype=torch.int32)
    got = hashing.blake3_rows(rows).numpy().view(np.uint8).reshape(-1, 32)
    for digest, row in zip(got, rows, strict=True):
        assert digest.tobytes() == blake3.blake3(row.numpy().astype("<i4").tobytes()).digest()


# Segments are 128 words: one short segment; exactly one; one and a one-word second; 2;
# 7 whole and a short last one (the second pass then hashes 8 digests, 256 bytes).
@pytest.mark.parametrize("n_words", [5, 128, 129, 256, 1000])
def test_row_digests_match_the_host_row_digest(hashing: ModuleType, n_words: int) -> None:
    rows = torch.randint(-(2**31), 2**31 - 1, (3, n_words), dtype=torch.int32)
    got = hashing.row_digests(rows).numpy().view(np.uint8).reshape(-1, 32)
    for digest, row in zip(got, rows, strict=True):
        assert digest.tobytes() == row_digest(row.numpy().astype("<i4").tobytes())


def test_row_digests_of_a_float32_accumulator_hash_its_int32_values(hashing: ModuleType) -> None:
    rows = torch.randint(-(2**24) + 1, 2**24, (2, 300), dtype=torch.int32)
    got = hashing.row_digests(rows.to(torch.float32)).numpy().view(np.uint8).reshape(-1, 32)
    assert [d.tobytes() for d in got] == [row_digest(r.numpy().tobytes()) for r in rows]


def test_row_digests_refuse_other_dtypes(hashing: ModuleType) -> None:
    with pytest.raises(ValueError, match="int32 or float32"):
        hashing.row_digests(torch.zeros((2, 4), dtype=torch.float64))


@pytest.mark.parametrize("count", [1, 2, 5, 13])
def test_tree_matches_the_host_tree_level_by_level(hashing: ModuleType, count: int) -> None:
    keys = TreeKeys.for_challenge(os.urandom(8).hex())
    rows = torch.randint(-(2**31), 2**31 - 1, (count, 24), dtype=torch.int32)
    tree = hashing.tree_of_product(keys, rows)
    host = MerkleTree.from_row_digests(keys, [row_digest(r.numpy().tobytes()) for r in rows])
    assert tree.root == host.root
    assert len(tree.levels) == len(host.levels)
    for mine, theirs in zip(tree.levels, host.levels, strict=True):
        assert (mine == theirs).all()
    assert tree.proof(count - 1) == host.proof(count - 1)


def _compile_for_hopper(
    kernel: object, signature: dict[str, str], constants: dict[str, object]
) -> bytes:
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    source = ASTSource(fn=kernel, signature=signature, constexprs=constants)
    options = {"enable_fp_fusion": False}  # as the launches say
    compiled = triton.compile(source, target=GPUTarget("cuda", 90, 32), options=options)
    return bytes(compiled.asm["cubin"])


def test_kernels_compile_for_sm90() -> None:
    from byteleap.proof import triton_blake3, triton_philox

    chunk = {"src_ptr": "*fp32", "cv_ptr": "*i32", "n_words": "i32", "chunks": "i32"}
    chunk |= {"lanes": "i32", "SRC_FLOAT": "constexpr", "LANES": "constexpr"}
    pair = {"src_ptr": "*i32", "dst_ptr": "*i32", "key_ptr": "*i32", "width": "i32"}
    pair |= {"half": "i32", "lanes": "i32", "flags": "i32", "LANES": "constexpr"}
    leaf = {"digest_ptr": "*i32", "dst_ptr": "*i32", "key_ptr": "*i32", "count": "i32"}
    leaf |= {"LANES": "constexpr"}
    gen = {"out_ptr": "*fp16", "params_ptr": "*i64", "count": "i64", "scale": "i32", "v": "i32"}
    gen |= {"LANES": "constexpr"}
    cases = [
        (triton_blake3._chunk_kernel, chunk, {"SRC_FLOAT": True, "LANES": 128}),
        (
            triton_blake3._chunk_kernel,
            chunk | {"src_ptr": "*i32"},
            {"SRC_FLOAT": False, "LANES": 128},
        ),
        (triton_blake3._pair_kernel, pair, {"LANES": 128}),
        (triton_blake3._leaf_kernel, leaf, {"LANES": 128}),
        (triton_philox._philox_kernel, gen, {"LANES": 256}),
        (triton_philox._philox_kernel, gen | {"out_ptr": "*i8"}, {"LANES": 256}),
    ]
    for kernel, signature, constants in cases:
        assert _compile_for_hopper(kernel, signature, constants)


def _cpu_multiply(
    a: torch.Tensor, b: torch.Tensor, profile: Profile, out: torch.Tensor | None = None
) -> torch.Tensor:
    """``cuda_backend.multiply``'s result types on the CPU, where torch has no fp16 → float32
    mm: float32 for cuda-f16 (so the hash reads an accumulator), int32 otherwise; written into
    ``out`` when given, as cuBLAS does."""
    exact = torch.mm(a.double(), b.double())
    result = exact.to(torch.float32 if profile is Profile.CUDA_F16 else torch.int32)
    return result if out is None else out.copy_(result)


@pytest.fixture
def cuda_on_cpu(
    philox: ModuleType, hashing: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> ModuleType:
    """``cuda_backend`` with its kernels interpreted on the CPU and only cuBLAS replaced."""
    from byteleap.proof import cuda_backend

    monkeypatch.setitem(sys.modules, "byteleap.proof.triton_philox", philox)
    monkeypatch.setitem(sys.modules, "byteleap.proof.triton_blake3", hashing)
    monkeypatch.setattr(byteleap.proof, "triton_philox", philox, raising=False)
    monkeypatch.setattr(byteleap.proof, "triton_blake3", hashing, raising=False)
    monkeypatch.setattr(cuda_backend, "multiply", _cpu_multiply)
    return cuda_backend


@pytest.mark.parametrize(
    ("profile", "n"),
    [(Profile.CUDA_F16, 24), (Profile.CUDA_I8, 24), (Profile.CUDA_I8, 20), (Profile.CPU_F64, 20)],
)
def test_device_pipeline_commits_to_the_cpu_root(
    cuda_on_cpu: ModuleType, profile: Profile, n: int
) -> None:
    """``cuda_product`` end to end on the CPU: kernels interpreted, only cuBLAS replaced."""
    spec = issue_challenge(n, profile, now=0.0, ttl_s=10.0)
    product = cuda_on_cpu.cuda_product(spec, TreeKeys.for_challenge(spec.challenge_id), _CPU)
    reference = solve(spec)
    assert product.tree.root == reference.root
    for i in (0, n // 2, n - 1):
        assert product.row_bytes(i) == reference.product.row_bytes(i)


@pytest.mark.parametrize("profile", [Profile.CUDA_F16, Profile.CUDA_I8])
def test_device_pipeline_of_several_products_matches_numpy_and_verifies(
    cuda_on_cpu: ModuleType, profile: Profile
) -> None:
    n, products = 64, 3
    spec = issue_challenge(n, profile, now=0.0, ttl_s=10.0, products=products)
    keys = TreeKeys.for_challenge(spec.challenge_id)
    device = Solution(spec, cuda_on_cpu.cuda_product(spec, keys, _CPU), 0.0)
    reference = solve(spec, "numpy")
    assert device.root == reference.root
    commitment = commit(device, hmac_sign)
    drawn = draw_reveal(spec, commitment, rng=random.Random(7))
    every_product = RevealRequest(
        challenge_id=spec.challenge_id, rows=(0, n - 1, n, 2 * n + 5, 3 * n - 1), cols=(0, 9, 63)
    )
    for request in (drawn, every_product):
        reveal = answer_reveal(device, request)
        assert reveal == answer_reveal(reference, request)
        verdict = verify(spec, commitment, request, reveal, now=0.0, verify_signature=hmac_check)
        assert verdict.ok, verdict


def test_device_pipeline_holds_every_product_before_the_first_multiply(
    cuda_on_cpu: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At the first multiply every A_j and B_jᵀ is generated and every result allocated: the
    working set the challenge was sized for is resident at once."""
    n, products, profile = 32, 3, Profile.CUDA_I8
    spec = issue_challenge(n, profile, now=0.0, ttl_s=10.0, products=products)
    seen: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def spy(
        a: torch.Tensor, b: torch.Tensor, profile: Profile, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        assert out is not None
        if not seen:
            seen.append((a._base.clone(), b._base.clone(), out._base))  # type: ignore[union-attr]
        return _cpu_multiply(a, b, profile, out)

    monkeypatch.setattr(cuda_on_cpu, "multiply", spy)
    cuda_on_cpu.cuda_product(spec, TreeKeys.for_challenge(spec.challenge_id), _CPU)
    all_a, all_b_columns, results = seen[0]
    assert all_a.shape == all_b_columns.shape == (products, n, n)
    assert results.shape == (products * n, n)
    for j in range(products):
        assert (all_a[j].double().numpy() == full_a(spec.seed, n, profile, product=j)).all()
        expected_b = full_b_columns(spec.seed, n, profile, product=j)
        assert (all_b_columns[j].double().numpy() == expected_b).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("n", [8, 100, 512, 1000])  # 8 and 100: _int_mm's fallback sizes
@pytest.mark.parametrize("profile", list(Profile))
def test_cuda_path_gives_the_cpu_root(profile: Profile, n: int) -> None:
    spec = issue_challenge(n, profile, now=0.0, ttl_s=10.0)
    on_gpu, on_cpu = solve(spec, "torch", "cuda"), solve(spec, "numpy")
    assert on_gpu.root == on_cpu.root
    for i in (0, n - 1):
        assert on_gpu.product.row_bytes(i) == on_cpu.product.row_bytes(i)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("profile", [Profile.CUDA_F16, Profile.CUDA_I8])
def test_cuda_path_of_several_products_gives_the_cpu_root(profile: Profile) -> None:
    spec = issue_challenge(512, profile, now=0.0, ttl_s=10.0, products=3)
    on_gpu, on_cpu = solve(spec, "torch", "cuda"), solve(spec, "numpy")
    assert on_gpu.root == on_cpu.root
    for i in (0, 512, 3 * 512 - 1):
        assert on_gpu.product.row_bytes(i) == on_cpu.product.row_bytes(i)
