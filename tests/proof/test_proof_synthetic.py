"""Synthetic proofs (the validator benchmark's miners): they pass verification for the draw they
were built for, in the same tree shape as a real one, and fail any other draw."""

from __future__ import annotations

import pytest

from byteleap.proof import (
    Profile,
    ReplayGuard,
    VerdictReason,
    answer_reveal,
    commit,
    issue_challenge,
    solve,
    verify,
)
from byteleap.proof.synthetic import seeded_request, synthesize

from .conftest import hmac_check, hmac_sign

KEY = b"bench-oracle"


@pytest.mark.parametrize(
    ("n", "products", "profile"),
    [(1, 1, Profile.CPU_F64), (7, 1, Profile.CPU_F64), (300, 3, Profile.CUDA_F16)],
)
def test_a_synthetic_proof_passes_for_the_draw_it_was_built_for(
    n: int, products: int, profile: Profile
) -> None:
    spec = issue_challenge(n, profile, now=1000.0, ttl_s=60.0, products=products)
    request = seeded_request(KEY, spec)
    assert request == seeded_request(KEY, spec)  # both sides of the benchmark agree
    proof = synthesize(spec, request)
    commitment = proof.commitment(hmac_sign)
    verdict = verify(
        spec, commitment, request, proof.reveal(), now=1001.0,
        verify_signature=hmac_check, replay_guard=ReplayGuard(),
    )  # fmt: skip
    assert verdict.ok, verdict


def test_its_proofs_have_the_real_trees_shape_and_its_rows_the_real_width() -> None:
    spec = issue_challenge(37, Profile.CPU_F64, now=1000.0, ttl_s=60.0)
    request = seeded_request(KEY, spec)
    honest = answer_reveal(solve(spec), request)
    synthetic = synthesize(spec, request).reveal()
    for real, fake in zip(honest.rows, synthetic.rows, strict=True):
        assert fake.index == real.index and len(fake.data) == len(real.data)
        assert len(fake.proof) == len(real.proof)
    # The drawn entries are the real ones; the rest of each row is not computed.
    real_rows = [r.data for r in honest.rows]
    assert [r.data for r in synthetic.rows] != real_rows


def test_another_draw_fails() -> None:
    spec = issue_challenge(64, Profile.CPU_F64, now=1000.0, ttl_s=60.0)
    proof = synthesize(spec, seeded_request(KEY, spec))
    other = seeded_request(b"another key", spec)
    honest_root = commit(solve(spec), hmac_sign).root
    assert proof.root != honest_root
    verdict = verify(
        spec, proof.commitment(hmac_sign), other, proof.reveal(), now=1001.0,
        verify_signature=hmac_check,
    )  # fmt: skip
    assert not verdict.ok and verdict.reason is VerdictReason.WRONG_SHAPE
