"""Tenants' private networks: WireGuard between a tenant's leases on workers of any miner.

One /24 per tenant from a private pool, one /32 per member (a lease); a key pair per lease,
made on the worker, its public half exchanged through the gateway. The flow:

1. the worker brings up the lease's interface (`MemberLink.up`) and builds a `JoinRequest`
   (lease, tenant, public key, underlay endpoint); the lease's miner signs it (`sign_join`);
2. the gateway's `TenantNetworks.join` checks signer, lease, tenant and key, allocates the
   member's address and answers with a `SignedPeerSet` per member at the network's next
   epoch (`Delivery`: the one for the joiner and updates for the others);
3. each member applies a peer set only after `PeerSetVerifier` accepted it (gateway's
   signature for its miner, its own lease, not expired, newer epoch, unseen nonce);
4. on release `TenantNetworks.leave` gives the others a new epoch without the member, whose
   interface and keys the worker deletes (`MemberLink.down`).

This package holds the pure parts (no I/O): `keys`, `addressing`, `messages`, `peersets`,
`exchange`, `render`, and `errors`. The gateway keeps the networks in its store
(``byteleap.gateway.private_networks``); the worker applies peer sets with ``wg``, ``ip`` and
``wireguard-go`` (``byteleap.worker.wireguard_applier``).
"""

from byteleap.net.wireguard.addressing import allocate_address, allocate_subnet, parse_pool
from byteleap.net.wireguard.errors import (
    AddressPoolExhausted,
    JoinRefusal,
    JoinRejected,
    LinkCommandFailed,
    NotAMember,
    WireGuardError,
)
from byteleap.net.wireguard.exchange import (
    JOIN_METHOD,
    JOIN_PATH,
    PeerSetRefusal,
    PeerSetVerdict,
    PeerSetVerifier,
    sign_join,
    sign_peer_set,
)
from byteleap.net.wireguard.keys import WireGuardKeyPair
from byteleap.net.wireguard.messages import (
    JoinRequest,
    NetworkSettings,
    Peer,
    PeerSet,
    SignedPeerSet,
)
from byteleap.net.wireguard.render import render_config

__all__ = [
    "JOIN_METHOD",
    "JOIN_PATH",
    "AddressPoolExhausted",
    "JoinRefusal",
    "JoinRejected",
    "JoinRequest",
    "LinkCommandFailed",
    "NetworkSettings",
    "NotAMember",
    "Peer",
    "PeerSet",
    "PeerSetRefusal",
    "PeerSetVerdict",
    "PeerSetVerifier",
    "SignedPeerSet",
    "WireGuardError",
    "WireGuardKeyPair",
    "allocate_address",
    "allocate_subnet",
    "parse_pool",
    "render_config",
    "sign_join",
    "sign_peer_set",
]
