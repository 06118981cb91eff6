"""Overlay addressing, pure: one /24 per tenant from a private pool, one /32 per member.

Allocation takes the lowest free slot, so it is deterministic for a given set of taken
slots and the store's uniqueness constraints (subnet per network; address per live member)
are the only arbiters between concurrent gateways.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Collection
from ipaddress import IPv4Address, IPv4Network

from byteleap.net.wireguard.errors import AddressPoolExhausted

TENANT_PREFIX = 24
# Host .1 … .254 of a /24: not the network or the broadcast address.
MAX_MEMBERS = 2 ** (32 - TENANT_PREFIX) - 2


def parse_pool(pool: str) -> IPv4Network:
    """The pool as a private IPv4 network that holds at least one tenant /24."""
    network = ipaddress.ip_network(pool, strict=True)
    if not isinstance(network, IPv4Network):
        raise ValueError(f"overlay pool {pool} must be IPv4")
    if not network.is_private:
        raise ValueError(f"overlay pool {pool} must be a private range")
    if network.prefixlen > TENANT_PREFIX:
        raise ValueError(f"overlay pool {pool} must be /{TENANT_PREFIX} or larger")
    return network


def allocate_subnet(pool: IPv4Network, taken: Collection[IPv4Network]) -> IPv4Network:
    """The lowest /24 of ``pool`` not in ``taken``."""
    used = set(taken)
    for subnet in pool.subnets(new_prefix=TENANT_PREFIX):
        if subnet not in used:
            return subnet
    raise AddressPoolExhausted(
        f"every /{TENANT_PREFIX} of {pool} belongs to a tenant network", pool=str(pool)
    )


def allocate_address(subnet: IPv4Network, taken: Collection[IPv4Address]) -> IPv4Address:
    """The lowest host address of ``subnet`` not in ``taken``."""
    used = set(taken)
    for host in subnet.hosts():
        if host not in used:
            return host
    raise AddressPoolExhausted(f"every address of {subnet} is in use", subnet=str(subnet))
