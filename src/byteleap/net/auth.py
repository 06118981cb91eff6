"""Signed requests and responses between nodes: btauth/1 from the bittensor SDK.

Requests: the caller signs method, path, body hash, a nanosecond nonce and the
receiver's hotkey (``bittensor.http_auth.sign``); the callee verifies freshness,
signature and replay (``http_auth.verify``) before it reads anything else, then
asks an ``authorize`` callback whether that hotkey may call it at all (e.g. "a
registered neuron with a validator permit"), then applies a per-hotkey rate limit.

Responses: the callee signs its response body for the caller with the method
tagged ``RESPONSE:<METHOD>``, so a signed response can never be replayed as a
request and vice versa; clients verify it with `verify_response`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from bittensor import http_auth
from bittensor.signing import WalletLike

from byteleap.errors import ByteleapError
from byteleap.net.ratelimit import RateLimiter

log = logging.getLogger(__name__)

RESPONSE_PREFIX = "RESPONSE:"


class AuthRejected(ByteleapError):
    """A request or response failed authentication; ``status`` is the HTTP code to answer."""

    reason = "auth"

    def __init__(self, message: str, *, reason: str, status: int) -> None:
        super().__init__(message, reason=reason)
        self.status = status


# SDK error class -> our reason code; every AuthError subclass the SDK defines is
# listed (a test pins this), anything else is a bug, not a caller error.
_REASONS: dict[type[http_auth.AuthError], str] = {
    http_auth.MalformedAuth: "malformed_auth",
    http_auth.WrongReceiver: "wrong_receiver",
    http_auth.StaleRequest: "stale",
    http_auth.ReplayedRequest: "replayed",
    http_auth.BadSignature: "bad_signature",
}

Authorize = Callable[[str], Awaitable[bool]]


@dataclass
class RequestVerifier:
    """Verifies one received request; raises `AuthRejected` with 401/403/429."""

    self_hotkey: str
    authorize: Authorize
    limiter: RateLimiter
    max_age_s: float = http_auth.DEFAULT_MAX_AGE
    nonce_store: http_auth.InMemoryNonceStore | None = None

    def __post_init__(self) -> None:
        if self.nonce_store is None:
            self.nonce_store = http_auth.InMemoryNonceStore(retention=self.max_age_s + 5.0)

    async def verify(
        self, headers: Mapping[str, str], body: bytes, *, method: str, path: str
    ) -> str:
        """The caller's hotkey, once the request is proven fresh, signed and allowed."""
        try:
            caller = http_auth.verify(
                headers,
                body,
                method=method,
                path=path,
                self_hotkey_ss58=self.self_hotkey,
                max_age=self.max_age_s,
                nonce_store=self.nonce_store,
            )
        except http_auth.AuthError as exc:
            reason = _REASONS.get(type(exc), "auth")
            raise AuthRejected(str(exc), reason=reason, status=401) from None
        if not await self.authorize(caller.hotkey_ss58):
            raise AuthRejected(
                f"{caller.hotkey_ss58} may not call this node", reason="not_permitted", status=403
            )
        if not self.limiter.allow(caller.hotkey_ss58):
            raise AuthRejected("rate limit exceeded", reason="rate_limited", status=429)
        return caller.hotkey_ss58


def sign_request(
    wallet: WalletLike,
    *,
    method: str,
    path: str,
    body: bytes,
    receiver: str,
    nonce_ns: int | None = None,
) -> dict[str, str]:
    return http_auth.sign(
        wallet, method=method, path=path, body=body, receiver_ss58=receiver, nonce_ns=nonce_ns
    )


def sign_response(
    wallet: WalletLike, *, method: str, path: str, body: bytes, caller: str
) -> dict[str, str]:
    return http_auth.sign(
        wallet, method=RESPONSE_PREFIX + method, path=path, body=body, receiver_ss58=caller
    )


def verify_response(
    headers: Mapping[str, str],
    body: bytes,
    *,
    method: str,
    path: str,
    self_hotkey: str,
    expected_sender: str,
    max_age_s: float = http_auth.DEFAULT_MAX_AGE,
    nonce_store: http_auth.InMemoryNonceStore | None = None,
) -> None:
    """Raise `AuthRejected` unless the response was signed by ``expected_sender`` for us."""
    try:
        sender = http_auth.verify(
            headers,
            body,
            method=RESPONSE_PREFIX + method,
            path=path,
            self_hotkey_ss58=self_hotkey,
            max_age=max_age_s,
            nonce_store=nonce_store or http_auth.InMemoryNonceStore(retention=max_age_s + 5.0),
        )
    except http_auth.AuthError as exc:
        reason = _REASONS.get(type(exc), "auth")
        raise AuthRejected(f"response: {exc}", reason=reason, status=502) from None
    if sender.hotkey_ss58 != expected_sender:
        raise AuthRejected(
            "response signed by another hotkey than the one called",
            reason="wrong_sender",
            status=502,
        )
