"""Signed lease heartbeats: the leased worker's own word, bound to the prober's nonce.

A gateway probing a lease sends a fresh random nonce with the probe; the miner forwards it
to the leased worker over the worker's link, and the worker signs :func:`heartbeat_payload`
with the Ed25519 key it enrolled with (the key the miner lists as ``WorkerView.public_key``,
the one its challenge commitments are checked against). The miner only relays it: it holds
no worker key, so it can no longer vouch alone for a worker that is gone or never existed,
and a heartbeat made for one probe answers no other (the nonce) and no other lease or worker.

Byte format of the signed payload (fixed width, so it is canonical; integers big-endian)::

    field          bytes  content
    domain           28   b"byteleap/lease-heartbeat/v1\\x00"
    lease_id         16   the lease id on the wire (the gateway's anonymous 128-bit id, raw)
    worker_id         8   the worker id's 64 bits (``w-`` + 16 hex, the hex part raw)
    nonce            32   the prober's 256-bit nonce, raw
    alive             1   0x01: the worker says the lease's workload is alive; 0x00: not
    signed_at_ms      8   unsigned: when the worker signed, in ms since the unix epoch

:func:`check_heartbeat` is what a prober runs on an answer: pure, no I/O, no clock of its own.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field

from byteleap.protocol.ids import Bytes32Hex, Bytes64Hex, HexId

DOMAIN = b"byteleap/lease-heartbeat/v1\x00"
NONCE_BYTES = 32
PAYLOAD_BYTES = len(DOMAIN) + 16 + 8 + NONCE_BYTES + 1 + 8
MAX_SIGNED_AT_MS = 2**63 - 1

_LEASE = re.compile(r"[0-9a-f]{32}")
_WORKER = re.compile(r"w-[0-9a-f]{16}")
_NONCE = re.compile(r"[0-9a-f]{64}")

WorkerId = Annotated[str, Field(pattern=r"^w-[0-9a-f]{16}$")]


class LeaseHeartbeat(BaseModel):
    """Worker → miner → prober: the worker's signed answer to one probe of one lease."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lease_id: HexId
    worker_id: WorkerId
    nonce: Bytes32Hex
    alive: bool
    signed_at_ms: int = Field(ge=0, le=MAX_SIGNED_AT_MS)
    signature: Bytes64Hex

    def payload(self) -> bytes:
        return heartbeat_payload(
            lease_id=self.lease_id,
            worker_id=self.worker_id,
            nonce=self.nonce,
            alive=self.alive,
            signed_at_ms=self.signed_at_ms,
        )


def new_nonce() -> str:
    """A fresh probe nonce: 256 random bits as hex."""
    return secrets.token_hex(NONCE_BYTES)


def heartbeat_payload(
    *, lease_id: str, worker_id: str, nonce: str, alive: bool, signed_at_ms: int
) -> bytes:
    """The canonical bytes a heartbeat signs (see the module docstring); ValueError when a
    field is not of its fixed form."""
    # One spelling per value (lowercase hex, no spaces), so equal bytes mean equal fields.
    if not (
        _LEASE.fullmatch(lease_id) and _WORKER.fullmatch(worker_id) and _NONCE.fullmatch(nonce)
    ):
        raise ValueError("a heartbeat names a 128-bit lease, a 64-bit worker, a 256-bit nonce")
    lease, worker, raw_nonce = map(bytes.fromhex, (lease_id, worker_id[2:], nonce))
    if not 0 <= signed_at_ms <= MAX_SIGNED_AT_MS:
        raise ValueError(f"signed_at_ms out of range: {signed_at_ms}")
    return (
        DOMAIN
        + lease
        + worker
        + raw_nonce
        + (b"\x01" if alive else b"\x00")
        + signed_at_ms.to_bytes(8, "big")
    )


def sign_heartbeat(
    sign: Callable[[bytes], bytes],
    *,
    lease_id: str,
    worker_id: str,
    nonce: str,
    alive: bool,
    signed_at_ms: int,
) -> LeaseHeartbeat:
    """A heartbeat signed with ``sign`` (the worker's Ed25519 key)."""
    payload = heartbeat_payload(
        lease_id=lease_id, worker_id=worker_id, nonce=nonce, alive=alive, signed_at_ms=signed_at_ms
    )
    return LeaseHeartbeat(
        lease_id=lease_id,
        worker_id=worker_id,
        nonce=nonce,
        alive=alive,
        signed_at_ms=signed_at_ms,
        signature=sign(payload).hex(),
    )


@dataclass(frozen=True, slots=True)
class HeartbeatCheck:
    """``ok`` only for a valid heartbeat whose worker says alive; else why not (``reason``:
    unsigned, no_worker_key, bad_worker_signature, wrong_lease, wrong_worker, wrong_nonce,
    stale, refused)."""

    ok: bool
    reason: str
    detail: str = ""


def _signed_by(heartbeat: LeaseHeartbeat, public_key_hex: str) -> bool:
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(heartbeat.signature), heartbeat.payload())
    except (ValueError, InvalidSignature):
        return False
    return True


def check_heartbeat(
    heartbeat: LeaseHeartbeat | None,
    *,
    public_key: str | None,
    lease_id: str,
    worker_id: str,
    nonce: str,
    now: float,
    max_age_s: float,
    max_ahead_s: float = 5.0,
) -> HeartbeatCheck:
    """Is ``heartbeat`` the leased worker's own, fresh answer to this probe?

    ``public_key`` is the worker key the lease was placed on (hex); ``lease_id``,
    ``worker_id`` and ``nonce`` are what the prober sent and expects back; the heartbeat
    may be at most ``max_age_s`` older than ``now`` and ``max_ahead_s`` ahead of it (clocks
    differ a little)."""
    if heartbeat is None:
        return HeartbeatCheck(False, "unsigned", "no heartbeat signed by the worker")
    if not public_key:
        return HeartbeatCheck(False, "no_worker_key", "the lease holds no worker key")
    if not _signed_by(heartbeat, public_key):
        return HeartbeatCheck(
            False, "bad_worker_signature", "not signed by the key the lease was placed on"
        )
    bound = (
        ("wrong_lease", heartbeat.lease_id, lease_id),
        ("wrong_worker", heartbeat.worker_id, worker_id),
        ("wrong_nonce", heartbeat.nonce, nonce),  # a replay of an earlier probe's answer
    )
    for reason, got, expected in bound:
        if got != expected:
            return HeartbeatCheck(False, reason, f"signed for {got}, not {expected}")
    age_s = now - heartbeat.signed_at_ms / 1000
    if age_s > max_age_s or -age_s > max_ahead_s:
        return HeartbeatCheck(False, "stale", f"signed {age_s:.1f}s before it was checked")
    if not heartbeat.alive:
        return HeartbeatCheck(False, "refused", "the worker says the lease is not alive")
    return HeartbeatCheck(True, "ok")
