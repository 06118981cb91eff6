"""Commit/reveal/verify: the honest round passes; every attack fails with its own reason."""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np
import pytest

from byteleap.proof import (
    Commitment,
    MalformedMessageError,
    OversizedMessageError,
    Profile,
    ReplayGuard,
    Reveal,
    Verdict,
    VerdictReason,
    answer_reveal,
    commit,
    draw_reveal,
    full_a,
    full_b,
    issue_challenge,
    parse_commitment,
    parse_reveal,
    reveal_size_limit,
    solve,
    verify,
)
from byteleap.proof.backends import Product, tree_of_rows
from byteleap.proof.challenge import Solution
from byteleap.proof.merkle import TreeKeys

from .conftest import Round, hmac_check, hmac_sign, play_round

R = VerdictReason


def _verify(rnd: Round, reveal: Reveal | None = None, **kw: object) -> Verdict:
    spec, _, commitment, request, honest = rnd
    args: dict[str, object] = {"now": spec.issued_at + 1, "verify_signature": hmac_check}
    args.update(kw)
    return verify(spec, commitment, request, reveal or honest, **args)  # type: ignore[arg-type]


def _cheat_solution(rnd: Round, rows: np.ndarray) -> tuple[Commitment, Reveal]:
    """Commit honestly to a dishonest product and answer the same request from it."""
    spec, _, _, request, _ = rnd
    encoded = rows.astype("<i4")
    product = Product(
        tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), encoded),
        lambda i: encoded[i].tobytes(),
    )
    solution = Solution(spec, product, 0.1)
    return commit(solution, hmac_sign), answer_reveal(solution, request)


def _verify_cheat(rnd: Round, rows: np.ndarray) -> Verdict:
    spec, _, _, request, _ = rnd
    commitment, reveal = _cheat_solution(rnd, rows)
    return verify(
        spec, commitment, request, reveal, now=spec.issued_at, verify_signature=hmac_check
    )


def _exact(rnd: Round) -> np.ndarray:
    spec = rnd[0]
    return full_a(spec.seed, spec.n, spec.profile) @ full_b(spec.seed, spec.n, spec.profile)


@pytest.mark.parametrize("profile", list(Profile))
def test_honest_round_passes(new_round: Callable[..., Round], profile: Profile) -> None:
    verdict = _verify(new_round(72, profile), replay_guard=ReplayGuard())
    assert verdict.ok and verdict.reason is R.OK


def test_numpy_and_torch_give_the_same_root() -> None:
    pytest.importorskip("torch")
    for profile in Profile:
        spec = issue_challenge(96, profile, now=0.0, ttl_s=10.0)
        assert solve(spec, "numpy").root == solve(spec, "torch", "cpu").root


@pytest.mark.adversarial
def test_random_result_fails(honest_round: Round) -> None:
    n = honest_round[0].n
    rows = np.random.default_rng(1).integers(-(2**20), 2**20, (n, n))
    assert _verify_cheat(honest_round, rows).reason is R.WRONG_VALUE


@pytest.mark.adversarial
def test_one_entry_off_by_one_is_found_when_sampled(honest_round: Round) -> None:
    rows = _exact(honest_round)
    request = honest_round[3]
    i, j = request.rows[3], request.cols[5]
    rows[i, j] += 1
    verdict = _verify_cheat(honest_round, rows)
    assert verdict.reason is R.WRONG_VALUE and (verdict.row, verdict.col) == (i, j)


@pytest.mark.adversarial
def test_fraction_of_rows_passes_at_about_f_to_the_s() -> None:
    f, s, trials, n = 0.75, 8, 300, 16
    spec = issue_challenge(n, Profile.CPU_F64, now=0.0, ttl_s=10.0)
    exact = full_a(spec.seed, n, spec.profile) @ full_b(spec.seed, n, spec.profile)
    rows = exact.copy()
    rows[int(f * n) :] = 0  # only the first f·n rows computed
    cheat = Solution(
        spec,
        Product(
            tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), rows.astype("<i4")),
            lambda i: rows.astype("<i4")[i].tobytes(),
        ),
        0.0,
    )
    commitment = commit(cheat, hmac_sign)
    rng = random.Random(7)
    passed = 0
    for _ in range(trials):
        request = draw_reveal(spec, commitment, s=s, t=n, rng=rng)
        verdict = verify(
            spec,
            commitment,
            request,
            answer_reveal(cheat, request),
            now=0.0,
            verify_signature=hmac_check,
        )
        passed += verdict.ok
    # Without replacement from 16 rows with 12 computed: C(12,8)/C(16,8) = 0.0385; f^8 = 0.100.
    expected = 495 / 12870
    assert abs(passed / trials - expected) < 0.05
    assert passed / trials <= f**s


@pytest.mark.adversarial
def test_epsilon_wrong_entries_detected_at_one_minus_one_minus_eps_to_st() -> None:
    n, eps, trials = 64, 0.01, 40
    rng = np.random.default_rng(3)
    detected = 0
    for _ in range(trials):
        rnd = play_round(n)
        rows = _exact(rnd)
        wrong = rng.random((n, n)) < eps
        rows[wrong] += 1
        detected += not _verify_cheat(rnd, rows).ok
    expected = 1 - (1 - eps) ** (8 * 32)  # 0.924
    assert abs(detected / trials - expected) < 0.2


@pytest.mark.adversarial
@pytest.mark.parametrize("low", [np.float32, np.float16])
def test_low_precision_product_fails(low: type) -> None:
    rnd = play_round(512)
    spec = rnd[0]
    a = full_a(spec.seed, spec.n, spec.profile).astype(low)
    b = full_b(spec.seed, spec.n, spec.profile).astype(low)
    with np.errstate(over="ignore", invalid="ignore"):
        approx = (a @ b).astype(np.float64)
        rows = np.nan_to_num(approx, posinf=2**31 - 1, neginf=-(2**31)).clip(-(2**31), 2**31 - 1)
    assert not np.array_equal(rows, _exact(rnd))
    assert _verify_cheat(rnd, rows).reason is R.WRONG_VALUE


@pytest.mark.adversarial
def test_swapped_rows_with_swapped_proofs_fail(honest_round: Round) -> None:
    reveal = honest_round[4]
    rows = list(reveal.rows)
    rows[0], rows[1] = (
        rows[1].model_copy(update={"index": rows[0].index}),
        rows[0].model_copy(update={"index": rows[1].index}),
    )
    verdict = _verify(honest_round, reveal.model_copy(update={"rows": tuple(rows)}))
    assert verdict.reason is R.BAD_PROOF


@pytest.mark.adversarial
def test_proof_for_i_presented_for_j_fails(honest_round: Round) -> None:
    reveal = honest_round[4]
    rows = list(reveal.rows)
    rows[2] = rows[2].model_copy(update={"proof": rows[3].proof})
    assert _verify(honest_round, reveal.model_copy(update={"rows": tuple(rows)})).reason is (
        R.BAD_PROOF
    )


@pytest.mark.adversarial
def test_forged_sibling_fails(honest_round: Round) -> None:
    reveal = honest_round[4]
    rows = list(reveal.rows)
    proof = list(rows[0].proof)
    proof[-1] = bytes(32)
    rows[0] = rows[0].model_copy(update={"proof": tuple(proof)})
    assert _verify(honest_round, reveal.model_copy(update={"rows": tuple(rows)})).reason is (
        R.BAD_PROOF
    )


@pytest.mark.adversarial
def test_reveal_differing_from_commitment_fails(honest_round: Round) -> None:
    reveal = honest_round[4]
    rows = list(reveal.rows)
    data = bytearray(rows[0].data)
    data[0] ^= 1
    rows[0] = rows[0].model_copy(update={"data": bytes(data)})
    assert _verify(honest_round, reveal.model_copy(update={"rows": tuple(rows)})).reason is (
        R.BAD_PROOF
    )


@pytest.mark.adversarial
def test_replayed_commitment_fails() -> None:
    old = play_round()
    guard = ReplayGuard()
    assert _verify(old, replay_guard=guard).ok
    assert _verify(old, replay_guard=guard).reason is R.REPLAYED
    new = play_round()
    spec, _, _, request, reveal = new
    # The old commitment as is names the old challenge.
    verdict = verify(spec, old[2], request, reveal, now=spec.issued_at, verify_signature=hmac_check)
    assert verdict.reason is R.WRONG_CHALLENGE
    # Re-signed for the new challenge, the old root is still a replay…
    moved = old[2].model_copy(update={"challenge_id": spec.challenge_id})
    resigned = commit(Solution(spec, old[1].product, 0.1), hmac_sign)
    assert resigned.root == old[2].root
    assert (
        verify(
            spec,
            resigned,
            request,
            reveal,
            now=spec.issued_at,
            verify_signature=hmac_check,
            replay_guard=guard,
        ).reason
        is R.REPLAYED
    )
    # …and without a guard its leaves are bound to the old challenge: signature or proof fail.
    assert (
        verify(spec, moved, request, reveal, now=spec.issued_at, verify_signature=hmac_check).reason
        is R.BAD_SIGNATURE
    )
    assert (
        verify(
            spec, resigned, request, reveal, now=spec.issued_at, verify_signature=hmac_check
        ).reason
        is R.BAD_PROOF
    )


@pytest.mark.adversarial
def test_late_and_bad_signature_and_wrong_challenge(honest_round: Round) -> None:
    spec, _, commitment, _, reveal = honest_round
    assert _verify(honest_round, now=spec.deadline + 0.001).reason is R.LATE
    assert _verify(honest_round, verify_signature=lambda p, s: False).reason is R.BAD_SIGNATURE
    other = reveal.model_copy(update={"challenge_id": "someone-else"})
    assert _verify(honest_round, other).reason is R.WRONG_CHALLENGE
    assert commitment.signature == hmac_sign(
        b"byteleap/proof/v1/commitment\x00"
        + bytes([0, 32])
        + spec.challenge_id.encode()
        + commitment.root
    )


@pytest.mark.adversarial
def test_wrong_shapes_fail(honest_round: Round) -> None:
    reveal = honest_round[4]
    short = list(reveal.rows)
    short[0] = short[0].model_copy(update={"data": short[0].data[:-4]})
    assert _verify(honest_round, reveal.model_copy(update={"rows": tuple(short)})).reason is (
        R.WRONG_SHAPE
    )
    missing = reveal.model_copy(update={"rows": reveal.rows[:-1]})
    assert _verify(honest_round, missing).reason is R.WRONG_SHAPE
    reordered = reveal.model_copy(update={"rows": reveal.rows[::-1]})
    assert _verify(honest_round, reordered).reason is R.WRONG_SHAPE


@pytest.mark.adversarial
def test_huge_values_in_rows_fail(honest_round: Round) -> None:
    rows = _exact(honest_round)
    rows[list(honest_round[3].rows)] = 2**31 - 1
    assert _verify_cheat(honest_round, rows).reason is R.WRONG_VALUE


@pytest.mark.adversarial
@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b'{"type": "commitment"}',
        b'{"type":"commitment","challenge_id":"x","root":"00","compute_s":1,"signature":""}',
        b'{"type":"commitment","challenge_id":"x","root":"'
        + b"00" * 32
        + b'","compute_s":NaN,"signature":""}',
        b'{"type":"commitment","challenge_id":"x","root":"'
        + b"00" * 32
        + b'","compute_s":1e999,"signature":""}',
        b'{"type":"commitment","challenge_id":"x","root":"'
        + b"00" * 32
        + b'","compute_s":-1,"signature":""}',
        b'{"type":"commitment","challenge_id":"../../x","root":"'
        + b"00" * 32
        + b'","compute_s":1,"signature":""}',
        b'{"type":"commitment","challenge_id":"x","root":"'
        + b"zz" * 32
        + b'","compute_s":1,"signature":"", "extra": 1}',
        b'{"type":"reveal","challenge_id":"x","rows":[]}',
    ],
)
def test_malformed_commitments_raise_typed_errors(raw: bytes) -> None:
    with pytest.raises(MalformedMessageError) as caught:
        parse_commitment(raw)
    assert caught.value.reason == "malformed"


@pytest.mark.adversarial
def test_malformed_and_oversized_reveals(honest_round: Round) -> None:
    spec, _, _, request, reveal = honest_round
    wire = reveal.model_dump_json().encode()
    limit = reveal_size_limit(spec.n, len(request.rows), len(request.cols))
    assert parse_reveal(wire, max_bytes=limit) == reveal
    with pytest.raises(OversizedMessageError) as caught:
        parse_reveal(wire + b" " * limit, max_bytes=limit)
    assert caught.value.reason == VerdictReason.OVERSIZED
    for bad in (wire.replace(b'"data":"', b'"data":"!'), wire.replace(b'"index":', b'"index":-')):
        with pytest.raises(MalformedMessageError):
            parse_reveal(bad, max_bytes=limit)
    with pytest.raises(MalformedMessageError):
        parse_reveal(b'{"type":"reveal","challenge_id":"x","rows":' + b"[" * 5000, max_bytes=10**6)
