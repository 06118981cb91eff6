"""Every cheat the devnet and the simulation use really fails verification."""

from __future__ import annotations

import random

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from byteleap.proof import (
    Cheat,
    Profile,
    VerdictReason,
    answer_reveal,
    cheat_solution,
    commit,
    draw_reveal,
    issue_challenge,
    verify,
)

KEY = Ed25519PrivateKey.generate()


def check(payload: bytes, signature: bytes) -> bool:
    try:
        KEY.public_key().verify(signature, payload)
    except Exception:
        return False
    return True


@pytest.mark.adversarial
@pytest.mark.parametrize("cheat", [Cheat.LAZY, Cheat.PARTIAL, Cheat.LOW_PRECISION])
def test_cheats_fail_with_a_wrong_value(cheat: Cheat) -> None:
    # n=256 keeps values past float32's exact range, so low precision is caught too.
    spec = issue_challenge(256, Profile.CPU_F64, now=0.0, ttl_s=60.0)
    solution = cheat_solution(cheat, spec, random.Random(1))
    commitment = commit(solution, KEY.sign)
    request = draw_reveal(spec, commitment, rng=random.Random(2))
    verdict = verify(
        spec,
        commitment,
        request,
        answer_reveal(solution, request),
        now=1.0,
        verify_signature=check,
    )
    assert not verdict.ok and verdict.reason is VerdictReason.WRONG_VALUE


@pytest.mark.adversarial
def test_sparse_errors_are_caught_sometimes_and_never_rejected_by_proof() -> None:
    caught = 0
    for trial in range(20):
        spec = issue_challenge(64, Profile.CPU_F64, now=0.0, ttl_s=60.0)
        solution = cheat_solution(Cheat.SPARSE_ERROR, spec, random.Random(trial))
        commitment = commit(solution, KEY.sign)
        request = draw_reveal(spec, commitment, rng=random.Random(100 + trial))
        verdict = verify(
            spec,
            commitment,
            request,
            answer_reveal(solution, request),
            now=1.0,
            verify_signature=check,
        )
        assert verdict.reason in {VerdictReason.OK, VerdictReason.WRONG_VALUE}
        caught += not verdict.ok
    assert 0 < caught < 20
