"""The worker's WireGuard links for leases in tenants' private networks.

One `MemberLink` per lease (its own interface, listen port and key pair, made here; only the
public key leaves). On `NetworkUp` the link comes up and its join request goes to the miner
(`NetworkJoin`); every `NetworkPeers` is applied only if the lease's `PeerSetVerifier`
accepts it (signed by the gateway for this miner, this lease, newer than the last); on
`NetworkDown`, or when the link to the miner drops, the interface and its key are deleted.
Messages for one lease are handled in the order they came, one at a time.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from byteleap.net.messages import NetworkDown, NetworkJoin, NetworkPeers, NetworkUp
from byteleap.net.wireguard import LinkCommandFailed, PeerSetVerifier
from byteleap.worker.wireguard_applier import LinkCommands, MemberLink

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
# Interface names are at most 15 characters: a prefix and the start of the (random) lease id.
IFNAME_PREFIX = "blw"
_IFNAME_ID_CHARS = 12


def ifname_for(lease_id: str) -> str:
    return IFNAME_PREFIX + lease_id[:_IFNAME_ID_CHARS]


def free_udp_port() -> int:
    """A UDP port free now (the OS picks it), for a link's listen port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        return int(sock.getsockname()[1])


@dataclass
class LeaseNetworkLinks:
    #: The host other members reach this worker at (None: as the miner sees it).
    public_host: str | None = None
    commands: LinkCommands = field(default_factory=LinkCommands)
    userspace: bool = True  # wireguard-go; False: the kernel module
    links: dict[str, MemberLink] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)

    def _lock(self, lease_id: str) -> asyncio.Lock:
        return self._locks.setdefault(lease_id, asyncio.Lock())

    async def up(self, message: NetworkUp, send: Send) -> None:
        """Bring up the lease's link and send its join request; nothing is left behind when
        that fails (the lease just has no network)."""
        lease_id = message.lease_id
        async with self._lock(lease_id):
            if lease_id in self.links:
                log.warning("network already up for lease", extra={"lease": lease_id})
                return
            link = MemberLink(
                ifname=ifname_for(lease_id),
                listen_port=free_udp_port(),
                verifier=PeerSetVerifier(
                    lease_id=lease_id,
                    tenant_id=message.tenant_id,
                    miner_hotkey=message.miner_hotkey,
                    gateway_hotkey=message.gateway_hotkey,
                    validity_s=message.validity_s,
                    skew_s=message.skew_s,
                ),
                commands=self.commands,
                userspace=self.userspace,
                keepalive_s=message.keepalive_s,
            )
            try:
                await link.up()
                request = link.join_request(
                    lease_id=lease_id,
                    tenant_id=message.tenant_id,
                    underlay_host=self.public_host or message.underlay_host,
                )
            except (LinkCommandFailed, ValueError) as exc:
                await link.down()
                log.error("lease network not brought up", extra={"lease": lease_id, "why": exc})
                return
            self.links[lease_id] = link
            await send(NetworkJoin(request=request).model_dump_json())
            log.info("lease network up", extra={"lease": lease_id, "ifname": link.ifname})

    async def apply(self, message: NetworkPeers) -> None:
        """Apply a peer set if its lease's verifier accepts it (a refusal is logged and kept
        with its reason in the verifier)."""
        async with self._lock(message.lease_id):
            link = self.links.get(message.lease_id)
            if link is None:
                log.warning("peer set for a lease with no link", extra={"lease": message.lease_id})
                return
            try:
                await link.apply(message.peer_set)
            except LinkCommandFailed as exc:
                log.error("peer set not applied", extra={"lease": message.lease_id, "why": exc})

    async def down(self, message: NetworkDown) -> None:
        async with self._lock(message.lease_id):
            link = self.links.pop(message.lease_id, None)
            if link is not None:
                await link.down()
                log.info(
                    "lease network down", extra={"lease": message.lease_id, "why": message.reason}
                )
        self._locks.pop(message.lease_id, None)

    async def down_all(self) -> None:
        """Every link goes (the miner link dropped, so every lease here has ended)."""
        for lease_id in list(self.links):
            await self.down(NetworkDown(lease_id=lease_id, reason="miner link lost"))
