"""The key exchange's messages and the network's settings (pydantic, frozen, strict shapes).

- `JoinRequest`: a member (a lease on a worker) asks to join its tenant's network with its
  public key and underlay endpoint; the miner hosting the lease signs it (btauth/1).
- `PeerSet`: what the gateway answers to one member: its overlay address and every other
  member's key, endpoint and /32. Travels as a `SignedPeerSet`: the exact body bytes plus
  the gateway's btauth/1 headers, so a member checks the bytes that were signed.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from byteleap.net.wireguard.addressing import MAX_MEMBERS, TENANT_PREFIX, parse_pool
from byteleap.net.wireguard.keys import PublicKey
from byteleap.protocol.ids import HexId

PROTOCOL_VERSION = 1
MAX_JOIN_BYTES = 4 * 1024
# 253 peers of ~180 bytes each, with room to spare.
MAX_PEER_SET_BYTES = 96 * 1024
MAX_AUTH_HEADERS = 8

_ENDPOINT = re.compile(r"^(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<v4>[0-9.]+)):(?P<port>[0-9]{1,5})$")


def check_endpoint(value: str) -> str:
    """``value`` as a canonical ``ip:port`` / ``[ip6]:port`` of a routable unicast address."""
    match = _ENDPOINT.match(value)
    if match is None:
        raise ValueError("endpoint must be ip:port or [ipv6]:port")
    host = ipaddress.ip_address(match["v6"] or match["v4"])
    if host.version != (6 if match["v6"] else 4):
        raise ValueError("IPv6 endpoints go in brackets, IPv4 ones do not")
    port = int(match["port"])
    if not 1 <= port <= 65_535:
        raise ValueError("endpoint port must be 1-65535")
    if host.is_multicast or host.is_unspecified or host.is_reserved:
        raise ValueError("endpoint must be a unicast address")
    return f"[{host}]:{port}" if host.version == 6 else f"{host}:{port}"


def _check_host(value: str) -> str:
    address = ipaddress.IPv4Address(value)
    return str(address)


def _check_host_route(value: str) -> str:
    network = ipaddress.IPv4Network(value, strict=True)
    if network.prefixlen != 32:
        raise ValueError("a peer's allowed-ips is exactly its /32")
    return str(network)


def _check_subnet(value: str) -> str:
    network = ipaddress.IPv4Network(value, strict=True)
    if network.prefixlen != TENANT_PREFIX:
        raise ValueError(f"a tenant subnet is a /{TENANT_PREFIX}")
    return str(network)


Endpoint = Annotated[str, Field(max_length=64), AfterValidator(check_endpoint)]
WireLeaseId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
Nonce = HexId
HostAddress = Annotated[str, Field(max_length=15), AfterValidator(_check_host)]
HostRoute = Annotated[str, Field(max_length=18), AfterValidator(_check_host_route)]
TenantSubnet = Annotated[str, Field(max_length=18), AfterValidator(_check_subnet)]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    v: Literal[1] = 1


class JoinRequest(_Msg):
    """Lease ``lease_id`` of tenant ``tenant_id`` asks to join that tenant's network."""

    type: Literal["wg_join"] = "wg_join"
    lease_id: WireLeaseId
    tenant_id: int = Field(ge=1, le=2**31 - 1)
    public_key: PublicKey
    endpoint: Endpoint


class Peer(_Msg):
    type: Literal["wg_peer"] = "wg_peer"
    public_key: PublicKey
    endpoint: Endpoint
    allowed_ip: HostRoute


class PeerSet(_Msg):
    """Everything one member needs to configure its interface, at one epoch.

    ``epoch`` grows with every peer set the gateway issues for a network, so a member never
    applies a message that is not newer than the last it applied.
    """

    type: Literal["wg_peer_set"] = "wg_peer_set"
    tenant_id: int = Field(ge=1, le=2**31 - 1)
    lease_id: WireLeaseId  # the member this is for
    subnet: TenantSubnet
    address: HostAddress
    epoch: int = Field(ge=1, le=2**62)
    nonce: Nonce
    issued_at: Seconds
    expires_at: Seconds
    peers: tuple[Peer, ...] = Field(max_length=MAX_MEMBERS - 1)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        subnet = ipaddress.IPv4Network(self.subnet)
        if ipaddress.IPv4Address(self.address) not in subnet:
            raise ValueError("the member's address is outside its subnet")
        routes = [p.allowed_ip for p in self.peers]
        if len(set(routes)) != len(routes) or f"{self.address}/32" in routes:
            raise ValueError("two members share an address")
        if any(ipaddress.IPv4Network(r).network_address not in subnet for r in routes):
            raise ValueError("a peer's address is outside the tenant subnet")
        if len({p.public_key for p in self.peers}) != len(self.peers):
            raise ValueError("two peers share a public key")
        if self.expires_at <= self.issued_at:
            raise ValueError("expires_at must be after issued_at")
        return self


AuthHeaders = Annotated[dict[str, Annotated[str, Field(max_length=256)]], Field(max_length=8)]


class SignedPeerSet(_Msg):
    """A `PeerSet`'s exact JSON ``body`` with the gateway's btauth/1 ``auth`` headers."""

    type: Literal["wg_signed_peer_set"] = "wg_signed_peer_set"
    auth: AuthHeaders
    body: str = Field(max_length=MAX_PEER_SET_BYTES)


class NetworkSettings(BaseModel):
    """Parameters of tenants' private networks (gateway side)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: Private range the tenant /24s come from (10.200.0.0/13: 2,048 tenants).
    pool: str = "10.200.0.0/13"
    #: How long a peer set may take to reach its member before the member refuses it.
    validity_s: float = Field(default=120.0, gt=0, le=3600)
    #: Clock difference between gateway and workers a member tolerates.
    skew_s: float = Field(default=5.0, ge=0, le=300)
    max_members: int = Field(default=MAX_MEMBERS, ge=1, le=MAX_MEMBERS)
    #: Keepalive towards peers, so members behind NAT stay reachable (0: off).
    keepalive_s: int = Field(default=25, ge=0, le=3600)

    @model_validator(mode="after")
    def _pool(self) -> Self:
        parse_pool(self.pool)
        return self
