"""How a worker joins its miner: the one-time enrollment token it is given, and the hello it
signs with its own key on every later connection.

The miner issues and checks tokens (``byteleap.miner.ledger``); the worker only reads the
miner's pinned TLS key out of one. Both sides build the same hello payload.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass

from byteleap.net.errors import MalformedToken

TOKEN_PREFIX = "blt1."
HELLO_CONTEXT = b"byteleap-worker-hello/1"


@dataclass(frozen=True)
class EnrollmentToken:
    """What a worker needs to join: the secret and the miner's pinned TLS key."""

    secret: str
    miner_public_key: str

    def encode(self) -> str:
        raw = json.dumps({"s": self.secret, "pin": self.miner_public_key}).encode()
        return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, token: str) -> EnrollmentToken:
        if not token.startswith(TOKEN_PREFIX):
            raise MalformedToken("not a byteleap enrollment token")
        body = token[len(TOKEN_PREFIX) :]
        try:
            data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
            return cls(secret=str(data["s"]), miner_public_key=str(data["pin"]))
        except (ValueError, KeyError, TypeError):
            raise MalformedToken("enrollment token is corrupt") from None


def hello_payload(nonce_hex: str, miner_hotkey: str) -> bytes:
    """What a worker signs to prove it holds its key, bound to this miner and this nonce."""
    return HELLO_CONTEXT + bytes.fromhex(nonce_hex) + miner_hotkey.encode()
