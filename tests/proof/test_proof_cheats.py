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
from byteleap.proof.cheats import Defence, MinerCheat, exact_rows, refusing_solution

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


def test_every_miner_cheat_says_what_it_does_and_which_rules_defeat_it() -> None:
    expected = {
        MinerCheat.MULTIPLEX: {Defence.BATCH_CREDIT, Defence.DEADLINE},
        MinerCheat.SHARED_HOTKEYS: {Defence.IDENTITY_FLAG},
        MinerCheat.MODEL_SPOOF: {
            Defence.CLAIM_SIZED_CHALLENGE,
            Defence.DEADLINE,
            Defence.MODEL_BAND,
        },
        MinerCheat.REFUSE_REVEAL: {Defence.REFUSAL_IS_FAILURE},
        MinerCheat.WASH_LEASE: {
            Defence.LEASE_RAMP,
            Defence.RECENT_CHALLENGE_GATE,
            Defence.GATEWAY_CLAIM_REFUSAL,
        },
    }
    assert set(MinerCheat) == set(expected)
    for cheat, defences in expected.items():
        assert set(cheat.defeated_by) == defences
        assert len(cheat.description) > 200 and "\n" not in cheat.description
    assert not {c.value for c in MinerCheat} & {c.value for c in Cheat}


@pytest.mark.adversarial
def test_a_refusing_cheat_computes_exactly_the_rows_it_would_reveal() -> None:
    spec = issue_challenge(32, Profile.CPU_F64, now=0.0, ttl_s=60.0)
    solution, computed = refusing_solution(spec, random.Random(3))
    exact = exact_rows(spec)
    right = {i for i in range(32) if solution.product.row_bytes(i) == exact[i].tobytes()}
    assert right == computed and len(computed) == 16
    # Its partial rows are the partial cheat's, drawn the same way.
    partial = cheat_solution(Cheat.PARTIAL, spec, random.Random(3))
    assert all(partial.product.row_bytes(i) == solution.product.row_bytes(i) for i in range(32))
