"""Challenges of several products: product 0 is the one-product challenge, the others are
independent, the tree holds products·n rows, verification recomputes any product's entries,
and every backend holds all operands and results at once."""

from __future__ import annotations

import json
import random
import tracemalloc

import numpy as np
import pytest
from pydantic import ValidationError

from byteleap.proof import (
    ChallengeSpec,
    Cheat,
    Profile,
    Reveal,
    RevealRequest,
    VerdictReason,
    answer_reveal,
    cheat_solution,
    commit,
    draw_reveal,
    full_a,
    full_b,
    issue_challenge,
    parse_challenge,
    parse_reveal,
    reveal_size_limit,
    solve,
    verify,
)
from byteleap.proof.backends import tree_of_rows
from byteleap.proof.challenge import Solution
from byteleap.proof.matrices import (
    STREAM_A,
    STREAM_B,
    cols_of_b,
    rows_of_a,
    stream_of,
    stream_slice,
)
from byteleap.proof.merkle import TreeKeys
from byteleap.proof.messages import MAX_PRODUCTS
from byteleap.proof.product import Product
from byteleap.proof.profiles import value_bounds

from .conftest import hmac_check, hmac_sign


def _spec(n: int = 48, products: int = 3, profile: Profile = Profile.CPU_F64) -> ChallengeSpec:
    return issue_challenge(n, profile, now=100.0, ttl_s=60.0, products=products)


def _one_product(spec: ChallengeSpec) -> ChallengeSpec:
    return spec.model_copy(update={"products": 1})


def _stacked_rows(spec: ChallengeSpec) -> np.ndarray:
    """The committed rows built product by product from the full matrices."""
    n = spec.n
    return np.concatenate(
        [
            full_a(spec.seed, n, spec.profile, product=j)
            @ full_b(spec.seed, n, spec.profile, product=j)
            for j in range(spec.products)
        ]
    ).astype("<i4")


def _verify(spec: ChallengeSpec, solution: Solution, request: RevealRequest) -> VerdictReason:
    commitment = commit(solution, hmac_sign)
    verdict = verify(
        spec,
        commitment,
        request,
        answer_reveal(solution, request),
        now=spec.issued_at,
        verify_signature=hmac_check,
    )
    return verdict.reason


def _request(spec: ChallengeSpec, rows: list[int]) -> RevealRequest:
    return RevealRequest(challenge_id=spec.challenge_id, rows=tuple(rows), cols=(0, 5, spec.n - 1))


def test_product_zero_is_the_stream_of_a_one_product_challenge() -> None:
    assert (stream_of(STREAM_A, 0), stream_of(STREAM_B, 0)) == (STREAM_A, STREAM_B)
    seed, n, profile = bytes(range(32)), 40, Profile.CUDA_I8
    v = value_bounds(profile, n).a
    assert (full_a(seed, n, profile).ravel() == stream_slice(seed, STREAM_A, 0, n * n, v)).all()
    assert (full_a(seed, n, profile, product=0) == full_a(seed, n, profile)).all()


def test_streams_of_different_products_and_matrices_never_coincide() -> None:
    words = {stream_of(m, j) for m in (STREAM_A, STREAM_B) for j in range(MAX_PRODUCTS)}
    assert len(words) == 2 * MAX_PRODUCTS
    seed, n, profile = bytes(range(32)), 32, Profile.CUDA_F16
    matrices = [full_a(seed, n, profile, product=j) for j in range(3)]
    matrices += [full_b(seed, n, profile, product=j) for j in range(3)]
    for i, first in enumerate(matrices):
        for second in matrices[i + 1 :]:
            assert (first != second).mean() > 0.5


def test_slices_of_a_product_are_its_full_matrices() -> None:
    seed, n, profile = bytes(range(32)), 33, Profile.CPU_F64
    a, b = full_a(seed, n, profile, product=2), full_b(seed, n, profile, product=2)
    assert (rows_of_a(seed, n, profile, [0, 32], product=2) == a[[0, 32]]).all()
    assert (cols_of_b(seed, n, profile, [1, 7], product=2) == b[:, [1, 7]].T).all()


def test_one_product_spec_serialises_as_before() -> None:
    spec = _spec(products=1)
    wire = json.loads(spec.model_dump_json())
    assert "products" not in wire
    assert parse_challenge(spec.model_dump_json()) == spec
    many = _spec(products=5)
    assert json.loads(many.model_dump_json())["products"] == 5
    assert parse_challenge(many.model_dump_json()) == many


@pytest.mark.parametrize("products", [0, -1, MAX_PRODUCTS + 1])
def test_products_out_of_range_are_refused(products: int) -> None:
    with pytest.raises(ValidationError):
        _spec(products=products)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("profile", list(Profile))
def test_committed_rows_are_every_product_in_order(backend: str, profile: Profile) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    spec = _spec(profile=profile)
    solution = solve(spec, backend)
    rows = _stacked_rows(spec)
    assert solution.product.tree.count == spec.row_count == 3 * spec.n
    assert solution.root == tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), rows).root
    # Product 0 is the one-product challenge of the same seed.
    single = solve(_one_product(spec), backend)
    for i in (0, spec.n - 1):
        assert solution.product.row_bytes(i) == single.product.row_bytes(i)
    assert solution.root != single.root


def test_numpy_holds_every_operand_and_result_at_once() -> None:
    """The point of several products: the working set is their sum. numpy allocations are
    traced; solving products one after another would peak at a third of this."""
    spec = _spec(n=128, products=3)
    float64_per_product = 3 * spec.n**2 * 8  # A, Bᵀ and the float64 result
    tracemalloc.start()
    try:
        solve(spec, "numpy")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak >= spec.products * float64_per_product


def test_draws_rows_of_every_product() -> None:
    spec = _spec(n=16, products=4)
    commitment = commit(solve(spec), hmac_sign)
    seen: set[int] = set()
    for k in range(40):
        request = draw_reveal(spec, commitment, rng=random.Random(k))
        assert all(0 <= i < spec.row_count for i in request.rows)
        assert all(0 <= j < spec.n for j in request.cols)
        seen |= {i // spec.n for i in request.rows}
    assert seen == set(range(4))


@pytest.mark.parametrize("profile", list(Profile))
def test_honest_rows_of_every_product_verify(profile: Profile) -> None:
    spec = _spec(profile=profile)
    solution = solve(spec)
    n = spec.n
    request = _request(spec, [0, n - 1, n, 2 * n + 7, 3 * n - 1])
    assert _verify(spec, solution, request) is VerdictReason.OK
    drawn = draw_reveal(spec, commit(solution, hmac_sign))
    assert _verify(spec, solution, drawn) is VerdictReason.OK


def _committed(spec: ChallengeSpec, rows: np.ndarray) -> Solution:
    encoded = rows.astype("<i4")
    tree = tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), encoded)
    return Solution(spec, Product(tree, lambda i: encoded[i].tobytes()), 0.1)


@pytest.mark.adversarial
def test_product_zero_repeated_for_every_product_fails() -> None:
    """A solver that computes one product and commits it for all of them."""
    spec = _spec()
    first = _stacked_rows(spec)[: spec.n]
    cheat = _committed(spec, np.concatenate([first] * spec.products))
    n = spec.n
    assert _verify(spec, cheat, _request(spec, [3])) is VerdictReason.OK
    assert _verify(spec, cheat, _request(spec, [3, n + 3])) is VerdictReason.WRONG_VALUE


@pytest.mark.adversarial
def test_one_wrong_entry_in_the_last_product_fails() -> None:
    spec = _spec()
    rows = _stacked_rows(spec)
    last = spec.row_count - 1
    rows[last, 5] += 1
    assert _verify(spec, _committed(spec, rows), _request(spec, [0, last])) is (
        VerdictReason.WRONG_VALUE
    )


@pytest.mark.adversarial
def test_a_one_product_tree_does_not_answer_a_several_product_challenge() -> None:
    """Committing to product 0 alone (n leaves): its proofs do not fit products·n leaves."""
    spec = _spec()
    single = solve(_one_product(spec))
    solution = Solution(spec, single.product, single.compute_s)
    assert _verify(spec, solution, _request(spec, [1, 2])) is VerdictReason.BAD_PROOF


@pytest.mark.adversarial
def test_a_row_beyond_the_products_is_refused() -> None:
    spec = _spec()
    solution = solve(spec)
    commitment = commit(solution, hmac_sign)
    reveal = Reveal(challenge_id=spec.challenge_id, rows=())
    request = _request(spec, [])
    outside = request.model_copy(update={"rows": (spec.row_count,)})
    verdict = verify(
        spec, commitment, outside, reveal, now=spec.issued_at, verify_signature=hmac_check
    )
    assert verdict.reason is VerdictReason.WRONG_SHAPE


@pytest.mark.adversarial
@pytest.mark.parametrize("cheat", list(Cheat))
def test_every_cheat_fails_where_it_is_wrong_in_any_product(cheat: Cheat) -> None:
    """Each cheat commits to products·n rows; a sampled entry it got wrong fails, whichever
    product it lies in (the sparse cheat is caught only where a sample hits its errors)."""
    spec = _spec(n=256, products=2)
    solution = cheat_solution(cheat, spec, random.Random(3))
    assert solution.product.tree.count == spec.row_count
    exact = _stacked_rows(spec)
    committed = np.stack(
        [np.frombuffer(solution.product.row_bytes(i), "<i4") for i in range(spec.row_count)]
    )
    wrong = np.argwhere(committed != exact)
    assert {int(i) // spec.n for i, _ in wrong} == {0, 1}  # the cheat spans both products
    for i, j in (wrong[0], wrong[-1]):
        request = RevealRequest(challenge_id=spec.challenge_id, rows=(int(i),), cols=(int(j),))
        assert _verify(spec, solution, request) is VerdictReason.WRONG_VALUE


def test_a_reveal_of_several_products_fits_the_size_limit() -> None:
    spec = _spec(n=64, products=MAX_PRODUCTS)
    solution = solve(spec)
    request = draw_reveal(spec, commit(solution, hmac_sign), s=8)
    wire = answer_reveal(solution, request).model_dump_json()
    assert parse_reveal(
        wire, max_bytes=reveal_size_limit(spec.n, len(request.rows), len(request.cols))
    )


def test_work_counts_every_product() -> None:
    spec = _spec(n=10, products=4)
    assert spec.work_flops == 2 * 4 * 1000
    assert spec.row_count == 40
