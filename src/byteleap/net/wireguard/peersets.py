"""Peer sets, pure: what every member of one tenant network is told at one epoch.

Each member gets its own `PeerSet`: its address and every *other* member as a peer whose
allowed-ips is exactly that member's /32, so WireGuard's cryptokey routing accepts from a
peer only the one address it owns. Nothing here reads a clock or draws randomness: the
caller passes ``issued_at`` and a nonce source.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from byteleap.net.wireguard.messages import Peer, PeerSet


@dataclass(frozen=True, slots=True)
class Member:
    """One member as the gateway knows it (``wire_id``: the lease id its miner knows)."""

    wire_id: str
    miner_hotkey: str
    public_key: str
    endpoint: str
    address: str


def peer_set_for(
    member: Member,
    members: Sequence[Member],
    *,
    tenant_id: int,
    subnet: str,
    epoch: int,
    nonce: str,
    issued_at: float,
    validity_s: float,
) -> PeerSet:
    peers = tuple(
        Peer(public_key=m.public_key, endpoint=m.endpoint, allowed_ip=f"{m.address}/32")
        for m in sorted(members, key=lambda m: m.address)
        if m.wire_id != member.wire_id
    )
    return PeerSet(
        tenant_id=tenant_id,
        lease_id=member.wire_id,
        subnet=subnet,
        address=member.address,
        epoch=epoch,
        nonce=nonce,
        issued_at=issued_at,
        expires_at=issued_at + validity_s,
        peers=peers,
    )


def peer_sets(
    members: Sequence[Member],
    *,
    tenant_id: int,
    subnet: str,
    epoch: int,
    issued_at: float,
    validity_s: float,
    new_nonce: Callable[[], str],
) -> list[tuple[Member, PeerSet]]:
    """One peer set per member, all at ``epoch``, each with its own nonce."""
    return [
        (
            m,
            peer_set_for(
                m,
                members,
                tenant_id=tenant_id,
                subnet=subnet,
                epoch=epoch,
                nonce=new_nonce(),
                issued_at=issued_at,
                validity_s=validity_s,
            ),
        )
        for m in members
    ]
