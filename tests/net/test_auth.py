"""btauth/1 requests and responses with real sr25519 wallets."""

from __future__ import annotations

import inspect
import time
from pathlib import Path

import bittensor as bt
import pytest
from bittensor import http_auth

from byteleap.keys import ensure_wallet
from byteleap.net.auth import (
    _REASONS,
    AuthRejected,
    RequestVerifier,
    sign_request,
    sign_response,
    verify_response,
)
from byteleap.net.ratelimit import RateLimiter

BODY = b'{"challenge": 1}'


@pytest.fixture
def alice(wallet_path: Path) -> bt.Wallet:
    return ensure_wallet("alice", path=wallet_path)


@pytest.fixture
def bob(wallet_path: Path) -> bt.Wallet:
    return ensure_wallet("bob", path=wallet_path)


def verifier(bob: bt.Wallet, allowed: set[str], burst: float = 100) -> RequestVerifier:
    async def authorize(hotkey: str) -> bool:
        return hotkey in allowed

    return RequestVerifier(
        self_hotkey=bob.hotkey.ss58_address,
        authorize=authorize,
        limiter=RateLimiter(rate_per_s=0.001, burst=burst),
    )


def signed(alice: bt.Wallet, bob: bt.Wallet, **overrides: object) -> dict[str, str]:
    args: dict[str, object] = {
        "method": "POST",
        "path": "/v1/challenges",
        "body": BODY,
        "receiver": bob.hotkey.ss58_address,
    }
    args.update(overrides)
    return sign_request(alice, **args)  # type: ignore[arg-type]


async def test_a_signed_request_names_its_caller(alice: bt.Wallet, bob: bt.Wallet) -> None:
    v = verifier(bob, {alice.hotkey.ss58_address})
    caller = await v.verify(signed(alice, bob), BODY, method="POST", path="/v1/challenges")
    assert caller == alice.hotkey.ss58_address


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        ("body", "bad_signature"),
        ("path", "bad_signature"),
        ("method", "bad_signature"),
        ("unsigned", "malformed_auth"),
        ("receiver", "wrong_receiver"),
        ("stale", "stale"),
        ("future", "stale"),
    ],
)
async def test_tampered_requests_are_rejected(
    alice: bt.Wallet, bob: bt.Wallet, tamper: str, reason: str
) -> None:
    v = verifier(bob, {alice.hotkey.ss58_address})
    headers = signed(alice, bob)
    body, method, path = BODY, "POST", "/v1/challenges"
    if tamper == "body":
        body = b'{"challenge": 2}'
    elif tamper == "path":
        path = "/v1/other"
    elif tamper == "method":
        method = "PUT"
    elif tamper == "unsigned":
        headers = {}
    elif tamper == "receiver":
        headers = signed(alice, bob, receiver=alice.hotkey.ss58_address)
    elif tamper == "stale":
        headers = signed(alice, bob, nonce_ns=time.time_ns() - 60 * 10**9)
    elif tamper == "future":
        headers = signed(alice, bob, nonce_ns=time.time_ns() + 60 * 10**9)
    with pytest.raises(AuthRejected) as info:
        await v.verify(headers, body, method=method, path=path)
    assert (info.value.reason, info.value.status) == (reason, 401)


@pytest.mark.adversarial
async def test_replayed_request_is_rejected(alice: bt.Wallet, bob: bt.Wallet) -> None:
    v = verifier(bob, {alice.hotkey.ss58_address})
    headers = signed(alice, bob)
    await v.verify(headers, BODY, method="POST", path="/v1/challenges")
    with pytest.raises(AuthRejected) as info:
        await v.verify(headers, BODY, method="POST", path="/v1/challenges")
    assert info.value.reason == "replayed"


@pytest.mark.adversarial
async def test_forged_signature_from_another_key(alice: bt.Wallet, bob: bt.Wallet) -> None:
    v = verifier(bob, {alice.hotkey.ss58_address})
    headers = signed(bob, bob)  # bob signs, claims to be alice
    headers[http_auth.HEADER_HOTKEY] = alice.hotkey.ss58_address
    with pytest.raises(AuthRejected) as info:
        await v.verify(headers, BODY, method="POST", path="/v1/challenges")
    assert info.value.reason == "bad_signature"


@pytest.mark.adversarial
async def test_unpermitted_caller_gets_403(alice: bt.Wallet, bob: bt.Wallet) -> None:
    v = verifier(bob, allowed=set())
    with pytest.raises(AuthRejected) as info:
        await v.verify(signed(alice, bob), BODY, method="POST", path="/v1/challenges")
    assert (info.value.reason, info.value.status) == ("not_permitted", 403)


@pytest.mark.adversarial
async def test_rate_limit_per_hotkey(alice: bt.Wallet, bob: bt.Wallet) -> None:
    v = verifier(bob, {alice.hotkey.ss58_address, bob.hotkey.ss58_address}, burst=2)
    for _ in range(2):
        await v.verify(signed(alice, bob), BODY, method="POST", path="/v1/challenges")
    with pytest.raises(AuthRejected) as info:
        await v.verify(signed(alice, bob), BODY, method="POST", path="/v1/challenges")
    assert (info.value.reason, info.value.status) == ("rate_limited", 429)
    # Another caller is not slowed down by alice's burst.
    await v.verify(signed(bob, bob), BODY, method="POST", path="/v1/challenges")


def test_every_sdk_auth_error_has_a_reason() -> None:
    sdk_errors = {
        cls
        for _, cls in inspect.getmembers(http_auth, inspect.isclass)
        if issubclass(cls, http_auth.AuthError) and cls is not http_auth.AuthError
    }
    assert sdk_errors == set(_REASONS)


def test_signed_response_round_trip(alice: bt.Wallet, bob: bt.Wallet) -> None:
    headers = sign_response(
        bob, method="POST", path="/x", body=b"ok", caller=alice.hotkey.ss58_address
    )
    verify_response(
        headers,
        b"ok",
        method="POST",
        path="/x",
        self_hotkey=alice.hotkey.ss58_address,
        expected_sender=bob.hotkey.ss58_address,
    )


@pytest.mark.adversarial
def test_response_checks(alice: bt.Wallet, bob: bt.Wallet, wallet_path: Path) -> None:
    mallory = ensure_wallet("mallory", path=wallet_path)
    me = alice.hotkey.ss58_address
    forged = sign_response(mallory, method="POST", path="/x", body=b"ok", caller=me)
    with pytest.raises(AuthRejected) as info:
        verify_response(
            forged,
            b"ok",
            method="POST",
            path="/x",
            self_hotkey=me,
            expected_sender=bob.hotkey.ss58_address,
        )
    assert info.value.reason == "wrong_sender"
    real = sign_response(bob, method="POST", path="/x", body=b"ok", caller=me)
    with pytest.raises(AuthRejected) as info:
        verify_response(
            real,
            b"changed",
            method="POST",
            path="/x",
            self_hotkey=me,
            expected_sender=bob.hotkey.ss58_address,
        )
    assert info.value.reason == "bad_signature"
    # A signed request can never pass as a response.
    request = sign_request(bob, method="POST", path="/x", body=b"ok", receiver=me)
    with pytest.raises(AuthRejected):
        verify_response(
            request,
            b"ok",
            method="POST",
            path="/x",
            self_hotkey=me,
            expected_sender=bob.hotkey.ss58_address,
        )


def test_rate_limiter_refills_with_time() -> None:
    now = [0.0]
    limiter = RateLimiter(rate_per_s=1.0, burst=1.0, clock=lambda: now[0])
    assert limiter.allow("a") and not limiter.allow("a")
    now[0] = 1.0
    assert limiter.allow("a")
