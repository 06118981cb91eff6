"""The worker's lease links where WireGuard cannot come up: nothing is sent, nothing is
kept; messages for leases with no link change nothing. (Links that do come up are proven in
tests/net/wireguard/test_private_leases_e2e.py.)"""

from __future__ import annotations

import secrets

from byteleap.net.messages import NetworkDown, NetworkUp
from byteleap.worker.networks import LeaseNetworkLinks, free_udp_port, ifname_for
from byteleap.worker.wireguard_applier import LinkCommands


def _up(lease_id: str) -> NetworkUp:
    return NetworkUp(
        lease_id=lease_id,
        tenant_id=1,
        gateway_hotkey="5Gateway",
        miner_hotkey="5Miner",
        underlay_host="192.0.2.7",
        validity_s=120,
        skew_s=5,
        keepalive_s=25,
    )


async def test_a_link_that_cannot_come_up_sends_no_join_and_leaves_nothing() -> None:
    # A namespace that does not exist: every command fails, as without root or wireguard-go.
    links = LeaseNetworkLinks(commands=LinkCommands(netns="blw-absent-" + secrets.token_hex(3)))
    sent: list[str] = []

    async def send(text: str) -> None:
        sent.append(text)

    lease_id = secrets.token_hex(16)
    await links.up(_up(lease_id), send)
    assert sent == [] and links.links == {}
    await links.down(NetworkDown(lease_id=lease_id, reason="released"))  # harmless
    await links.down_all()
    assert links.links == {}


def test_each_lease_gets_its_own_interface_name_and_port() -> None:
    a, b = secrets.token_hex(16), secrets.token_hex(16)
    assert ifname_for(a) != ifname_for(b) and len(ifname_for(a)) <= 15
    assert 1 <= free_udp_port() <= 65_535
