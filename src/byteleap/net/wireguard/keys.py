"""WireGuard keys: X25519 through ``cryptography``, in WireGuard's base64 spelling.

A member's private key is made where its interface runs (the worker) and handed to ``wg``
only through a pipe; it never goes on the wire, on disk or on a command line. One key pair
per lease: a new lease never reuses an old lease's key.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from pydantic import AfterValidator

KEY_BYTES = 32


def _decode(value: str) -> bytes:
    # validate=True refuses characters outside the alphabet; the length check refuses the rest.
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not base64") from None
    if len(raw) != KEY_BYTES or base64.b64encode(raw).decode("ascii") != value:
        raise ValueError("not a 32-byte key in canonical base64")
    return raw


def check_public_key(value: str) -> str:
    """``value`` if it is a canonical WireGuard public key (a valid X25519 point encoding)."""
    X25519PublicKey.from_public_bytes(_decode(value))
    return value


#: A WireGuard public key in base64, as ``wg`` prints it.
PublicKey = Annotated[str, AfterValidator(check_public_key)]


@dataclass(frozen=True, slots=True)
class WireGuardKeyPair:
    """One lease's key pair. ``repr`` never shows the private half."""

    public_key: str
    _private: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> WireGuardKeyPair:
        private = X25519PrivateKey.generate()
        public = private.public_key().public_bytes_raw()
        return cls(base64.b64encode(public).decode("ascii"), private.private_bytes_raw())

    def private_key_base64(self) -> str:
        """For ``wg`` only (through stdin)."""
        return base64.b64encode(self._private).decode("ascii")
