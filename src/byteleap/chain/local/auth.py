"""Signed writes to the devnet chain: btauth/1 bound to the chain's identity.

Every write is signed by the hotkey it acts for with ``bittensor.http_auth.sign`` and
receiver-bound to the chain id (``byteleap-local:<random hex>``, fixed at genesis and
served by ``GET /v1/info``), so a request signed for one devnet chain is refused by
any other. Seen nonces live in the chain's SQLite file, so a replay is refused even
across a restart of the service.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Mapping

from bittensor import http_auth

from byteleap.chain.port import ChainAuthError

# Forward clock drift we accept between signer and chain.
ALLOWED_SKEW_S = 2.0

# btauth failure class -> the reason the service returns with its 401.
AUTH_REASONS: dict[type[http_auth.AuthError], str] = {
    http_auth.MalformedAuth: "malformed_auth",
    http_auth.WrongReceiver: "wrong_receiver",
    http_auth.StaleRequest: "stale",
    http_auth.BadSignature: "bad_signature",
    http_auth.ReplayedRequest: "replayed",
}


class SqliteNonceStore:
    """A :class:`bittensor.http_auth.NonceStore` kept in the chain database."""

    def __init__(self, con: sqlite3.Connection, retention: float) -> None:
        self._con = con
        self.retention = retention
        self._lock = threading.Lock()
        con.execute(
            "CREATE TABLE IF NOT EXISTS nonces (hotkey TEXT NOT NULL, nonce INTEGER NOT NULL, "
            "expires_at REAL NOT NULL, PRIMARY KEY (hotkey, nonce))"
        )

    def check_and_store(self, hotkey_ss58: str, nonce_ns: int) -> bool:
        now = time.time()
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                self._con.execute("DELETE FROM nonces WHERE expires_at <= ?", (now,))
                cursor = self._con.execute(
                    "INSERT OR IGNORE INTO nonces (hotkey, nonce, expires_at) VALUES (?, ?, ?)",
                    (hotkey_ss58, nonce_ns, now + self.retention),
                )
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")
            return cursor.rowcount == 1

    def close(self) -> None:
        with self._lock:
            self._con.close()


class WriteVerifier:
    """Authenticates one signed write; returns the acting hotkey."""

    def __init__(self, chain_id: str, nonces: SqliteNonceStore, max_age_s: float) -> None:
        if nonces.retention < max_age_s + ALLOWED_SKEW_S:
            raise ValueError("nonce retention must cover the freshness window")
        self.chain_id = chain_id
        self._nonces = nonces
        self._max_age_s = max_age_s

    def verify(self, headers: Mapping[str, str], body: bytes, *, method: str, path: str) -> str:
        if not any(k.lower() == http_auth.HEADER_SIGNATURE.lower() for k in headers):
            raise ChainAuthError(
                f"unsigned: chain writes need btauth/1 headers ({http_auth.HEADER_SIGNATURE})",
                reason="unsigned",
            )
        try:
            caller = http_auth.verify(
                headers,
                body,
                method=method,
                path=path,
                self_hotkey_ss58=self.chain_id,
                max_age=self._max_age_s,
                allowed_skew=ALLOWED_SKEW_S,
                require_receiver=True,
                nonce_store=self._nonces,
            )
        except http_auth.AuthError as exc:
            reason = next((r for cls, r in AUTH_REASONS.items() if isinstance(exc, cls)), "auth")
            raise ChainAuthError(f"{reason}: {exc}", reason=reason) from None
        return caller.hotkey_ss58
