"""Signing the key exchange (btauth/1, through ``byteleap.net.auth``) and checking it.

- The miner hosting a lease signs the member's `JoinRequest` as a request to the gateway
  (`sign_join`); the gateway checks it with the same `RequestVerifier` every node uses.
- The gateway signs each `PeerSet` as a response addressed to the member's miner, under a
  method no HTTP server answers (``WG-PEERS``), so a peer set can never pass as anything else
  (`sign_peer_set`).
- A member accepts a peer set only through `PeerSetVerifier.check`: the gateway's signature
  for its miner, its own lease and tenant, not expired, an epoch newer than the last one it
  accepted and a nonce it never saw. Every refusal is returned with its reason and recorded.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from bittensor import http_auth
from bittensor.signing import WalletLike
from pydantic import ValidationError

from byteleap.net.auth import AuthRejected, sign_request, sign_response, verify_response
from byteleap.net.wireguard.messages import JoinRequest, PeerSet, SignedPeerSet

log = logging.getLogger(__name__)

JOIN_METHOD = "POST"
JOIN_PATH = "/v1/networks/join"
PEERS_METHOD = "WG-PEERS"
PEERS_PATH = "/v1/networks/peers"
_REMEMBERED_NONCES = 4096
_REMEMBERED_REJECTIONS = 256


def sign_join(
    miner: WalletLike, request: JoinRequest, *, gateway_hotkey: str
) -> tuple[dict[str, str], bytes]:
    """The btauth/1 headers and the exact body of ``request``, signed by the lease's miner."""
    body = request.model_dump_json().encode()
    headers = sign_request(
        miner, method=JOIN_METHOD, path=JOIN_PATH, body=body, receiver=gateway_hotkey
    )
    return headers, body


def sign_peer_set(gateway: WalletLike, peer_set: PeerSet, *, miner_hotkey: str) -> SignedPeerSet:
    body = peer_set.model_dump_json()
    auth = sign_response(
        gateway, method=PEERS_METHOD, path=PEERS_PATH, body=body.encode(), caller=miner_hotkey
    )
    return SignedPeerSet(auth=auth, body=body)


class PeerSetRefusal(StrEnum):
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"  # forged or tampered with
    WRONG_SIGNER = "wrong_signer"  # a valid signature, by someone other than the gateway
    WRONG_RECEIVER = "wrong_receiver"  # signed for another miner
    WRONG_MEMBER = "wrong_member"  # another lease's or another tenant's peer set
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    REPLAYED = "replayed"  # seen before, an epoch not newer than the last, or a reused nonce


# btauth/1 reasons (byteleap.net.auth) -> ours.
_AUTH_REFUSALS = {
    "malformed_auth": PeerSetRefusal.BAD_SIGNATURE,
    "bad_signature": PeerSetRefusal.BAD_SIGNATURE,
    "wrong_sender": PeerSetRefusal.WRONG_SIGNER,
    "wrong_receiver": PeerSetRefusal.WRONG_RECEIVER,
    "stale": PeerSetRefusal.EXPIRED,
    "replayed": PeerSetRefusal.REPLAYED,
}


@dataclass(frozen=True, slots=True)
class PeerSetVerdict:
    peer_set: PeerSet | None
    refusal: PeerSetRefusal | None = None
    detail: str = ""
    at: float = 0.0

    @property
    def ok(self) -> bool:
        return self.refusal is None


@dataclass
class PeerSetVerifier:
    """One member's gate for peer sets; it remembers the last epoch and the nonces it saw."""

    lease_id: str
    tenant_id: int
    miner_hotkey: str  # the receiver the gateway signs for
    gateway_hotkey: str  # the only signer trusted
    validity_s: float = 120.0
    skew_s: float = 5.0
    clock: Callable[[], float] = time.time
    last_epoch: int = 0
    rejections: deque[PeerSetVerdict] = field(
        default_factory=lambda: deque(maxlen=_REMEMBERED_REJECTIONS)
    )
    _nonces: deque[str] = field(default_factory=lambda: deque(maxlen=_REMEMBERED_NONCES))
    _btauth_nonces: http_auth.InMemoryNonceStore = field(init=False)

    def __post_init__(self) -> None:
        self._btauth_nonces = http_auth.InMemoryNonceStore(
            retention=self.validity_s + self.skew_s + 5.0
        )

    def check(self, message: SignedPeerSet | bytes | str) -> PeerSetVerdict:
        """Accept the peer set (and move to its epoch) or refuse it with a recorded reason."""
        verdict = self._judge(message)
        if verdict.ok:
            assert verdict.peer_set is not None
            self.last_epoch = verdict.peer_set.epoch
            self._nonces.append(verdict.peer_set.nonce)
        else:
            self.rejections.append(verdict)
            log.warning(
                "peer set refused",
                extra={"lease": self.lease_id, "why": verdict.refusal, "detail": verdict.detail},
            )
        return verdict

    def _refuse(self, refusal: PeerSetRefusal, detail: str) -> PeerSetVerdict:
        return PeerSetVerdict(None, refusal, detail, at=self.clock())

    def _judge(self, message: SignedPeerSet | bytes | str) -> PeerSetVerdict:
        try:
            signed = (
                message
                if isinstance(message, SignedPeerSet)
                else SignedPeerSet.model_validate_json(message)
            )
        except ValidationError as exc:
            return self._refuse(PeerSetRefusal.MALFORMED, _first_error(exc))
        body = signed.body.encode()
        try:
            verify_response(
                signed.auth,
                body,
                method=PEERS_METHOD,
                path=PEERS_PATH,
                self_hotkey=self.miner_hotkey,
                expected_sender=self.gateway_hotkey,
                max_age_s=self.validity_s + self.skew_s,
                nonce_store=self._btauth_nonces,
            )
        except AuthRejected as exc:
            return self._refuse(
                _AUTH_REFUSALS.get(exc.reason, PeerSetRefusal.BAD_SIGNATURE), str(exc)
            )
        try:
            peer_set = PeerSet.model_validate_json(body)
        except ValidationError as exc:  # signed by the gateway, yet not a peer set
            return self._refuse(PeerSetRefusal.MALFORMED, _first_error(exc))
        return self._judge_content(peer_set)

    def _judge_content(self, peer_set: PeerSet) -> PeerSetVerdict:
        now = self.clock()
        if peer_set.lease_id != self.lease_id or peer_set.tenant_id != self.tenant_id:
            return self._refuse(
                PeerSetRefusal.WRONG_MEMBER,
                f"for lease {peer_set.lease_id} of tenant {peer_set.tenant_id}",
            )
        if now >= peer_set.expires_at:
            return self._refuse(
                PeerSetRefusal.EXPIRED, f"expired {now - peer_set.expires_at:.1f}s ago"
            )
        if peer_set.issued_at > now + self.skew_s:
            return self._refuse(
                PeerSetRefusal.NOT_YET_VALID, f"issued {peer_set.issued_at - now:.1f}s ahead"
            )
        if peer_set.epoch <= self.last_epoch:
            return self._refuse(
                PeerSetRefusal.REPLAYED,
                f"epoch {peer_set.epoch} is not after {self.last_epoch}",
            )
        if peer_set.nonce in self._nonces:
            return self._refuse(PeerSetRefusal.REPLAYED, "nonce already used")
        return PeerSetVerdict(peer_set, at=now)


def _first_error(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}"[:300]
