"""Errors of tenants' private networks.

NetError (byteleap.net.errors)
 └── WireGuardError                 (reason "wireguard")
      ├── JoinRejected          a join request refused; ``reason``: a `JoinRefusal`
      ├── NotAMember            a lease not (or no longer) in a network    ("not_member")
      ├── AddressPoolExhausted  no free tenant subnet or member address    ("pool_exhausted")
      └── LinkCommandFailed     ``wg``/``ip``/``wireguard-go`` failed/hung  ("link_command")

A peer set a member refuses is not an exception: `PeerSetVerifier.check` returns a verdict
with its reason, because a forged or replayed message is the sender's fault, not the member's.
"""

from __future__ import annotations

from enum import StrEnum

from byteleap.net.errors import NetError


class WireGuardError(NetError):
    reason = "wireguard"


class JoinRefusal(StrEnum):
    """Why the gateway refused a join request (stored with the rejection)."""

    MALFORMED = "malformed"  # unparsable body or bad field
    BAD_SIGNATURE = "bad_signature"  # forged: the signature does not verify
    MALFORMED_AUTH = "malformed_auth"  # auth headers missing or unparsable
    WRONG_RECEIVER = "wrong_receiver"  # signed for another gateway
    STALE = "stale"  # signed too long ago (or in the future)
    REPLAYED = "replayed"  # this signed request was already accepted
    NOT_PERMITTED = "not_permitted"  # the signer may not call the gateway at all
    RATE_LIMITED = "rate_limited"
    UNKNOWN_LEASE = "unknown_lease"  # no live lease with that id
    WRONG_TENANT = "wrong_tenant"  # the lease is another tenant's: joining a foreign network
    WRONG_MINER = "wrong_miner"  # signed by a miner that does not host the lease
    LEASE_NOT_LIVE = "lease_not_live"  # the lease ended
    KEY_REUSED = "key_reused"  # a public key some other (or earlier) member used
    KEY_CHANGED = "key_changed"  # a member tried to swap its key without a new lease
    NETWORK_FULL = "network_full"


class JoinRejected(WireGuardError):
    reason = "join_rejected"

    def __init__(self, message: str, *, refusal: JoinRefusal, **context: object) -> None:
        super().__init__(message, reason=refusal.value, **context)
        self.refusal = refusal


class NotAMember(WireGuardError):
    reason = "not_member"


class AddressPoolExhausted(WireGuardError):
    reason = "pool_exhausted"


class LinkCommandFailed(WireGuardError):
    reason = "link_command"
