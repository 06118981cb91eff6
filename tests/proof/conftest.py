"""Fixtures for the proof tests: real challenges, solutions and an HMAC signer."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

import pytest

from byteleap.proof import (
    ChallengeSpec,
    Commitment,
    Profile,
    Reveal,
    RevealRequest,
    Solution,
    answer_reveal,
    commit,
    draw_reveal,
    issue_challenge,
    solve,
)

KEY = b"test-signing-key-0123456789abcdef"


def hmac_sign(payload: bytes) -> bytes:
    return hmac.new(KEY, payload, hashlib.sha256).digest()


def hmac_check(payload: bytes, signature: bytes) -> bool:
    return hmac.compare_digest(hmac_sign(payload), signature)


Round = tuple[ChallengeSpec, Solution, Commitment, RevealRequest, Reveal]


def play_round(n: int = 64, profile: Profile = Profile.CPU_F64) -> Round:
    spec = issue_challenge(n, profile, now=1000.0, ttl_s=60.0)
    solution = solve(spec)
    commitment = commit(solution, hmac_sign)
    request = draw_reveal(spec, commitment)
    return spec, solution, commitment, request, answer_reveal(solution, request)


@pytest.fixture
def honest_round() -> Round:
    return play_round()


@pytest.fixture
def signer() -> Callable[[bytes], bytes]:
    return hmac_sign


@pytest.fixture
def check_signature() -> Callable[[bytes, bytes], bool]:
    return hmac_check


@pytest.fixture
def new_round() -> Callable[..., Round]:
    return play_round
