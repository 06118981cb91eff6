"""Transport errors.

NetError
 ├── PinMismatch      the peer's TLS key is not the one published on chain (reason: pin_mismatch)
 ├── PeerUnreachable  the peer did not answer the TLS handshake               (reason: unreachable)
 ├── IdentityError    a local TLS identity is missing or unreadable           (reason: identity)
 └── MalformedToken   an enrollment token that does not decode          (reason: token_rejected)
"""

from __future__ import annotations

from byteleap.errors import ByteleapError


class NetError(ByteleapError):
    reason = "net"


class PinMismatch(NetError):
    reason = "pin_mismatch"


class PeerUnreachable(NetError):
    reason = "unreachable"


class IdentityError(NetError):
    reason = "identity"


class MalformedToken(NetError):
    reason = "token_rejected"
