"""Tenants' private networks for real: wireguard-go interfaces in network namespaces,
configured only from the gateway's signed peer sets.

Hosts a1, a2, a3 run tenant A's leases on two miners; b1 runs tenant B's. Proven with TCP
probes over the overlay: A's members reach each other; A and B cannot reach each other, not
even when B's member points a peer at A's member with A's public key; a forged peer set
changes nothing; after a2's lease is released, a2 (which keeps its interface, as a hostile
worker would) reaches no one and no one reaches it, and the old peer set cannot be replayed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from byteleap.gateway.private_networks import Delivery, JoinOutcome, TenantNetworks
from byteleap.net.wireguard import (
    PeerSet,
    PeerSetRefusal,
    PeerSetVerifier,
    sign_join,
    sign_peer_set,
)
from byteleap.store import Store
from byteleap.worker.wireguard_applier import LinkCommands, MemberLink
from net.wireguard.netns_harness import Underlay, missing_prerequisite
from net.wireguard.wg_fixtures import Parties, keypair, networks, new_lease, new_tenant, parties

pytestmark = [pytest.mark.netns, pytest.mark.slow]

LISTEN_PORT = 51820
# A positive probe must outlast one WireGuard handshake retry (REKEY_TIMEOUT 5 s + jitter):
# the keepalive sends an initiation as soon as one side has its peer, and when the other side
# has not applied its own peer set yet that first initiation is dropped.
REACH_S = 8.0
SILENCE_S = 1.5  # a negative probe waits this long for nothing


@dataclass
class Host:
    name: str
    link: MemberLink
    lease_id: str
    tenant_id: int
    miner_hotkey: str

    @property
    def address(self) -> str:
        assert self.link.address is not None
        return self.link.address


@pytest.fixture
def underlay() -> Iterator[Underlay]:
    why = missing_prerequisite()
    if why is not None:
        pytest.skip(why)
    net = Underlay()
    try:
        net.open()
    except Exception as exc:  # e.g. a container without CAP_SYS_ADMIN
        net.close()
        pytest.skip(f"cannot create network namespaces here: {exc}")
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


@pytest.fixture
async def links() -> AsyncIterator[list[MemberLink]]:
    made: list[MemberLink] = []
    try:
        yield made
    finally:
        for link in made:
            await link.down()


async def _host(
    underlay: Underlay,
    links: list[MemberLink],
    nets: TenantNetworks,
    p: Parties,
    *,
    name: str,
    tenant_id: int,
    miner: str,
) -> tuple[Host, JoinOutcome]:
    """Bring up a member on a new host and join it, signed by its miner."""
    ip = underlay.add_host(name)
    miner_key = p.miner_a if miner == "a" else p.miner_b
    lease = await new_lease(nets.store, tenant_id, miner_key.ss58_address)
    link = MemberLink(
        ifname=f"{underlay.prefix}{name}w",
        listen_port=LISTEN_PORT,
        verifier=PeerSetVerifier(
            lease_id=lease,
            tenant_id=tenant_id,
            miner_hotkey=miner_key.ss58_address,
            gateway_hotkey=p.gateway.ss58_address,
        ),
        commands=LinkCommands(netns=underlay.ns(name)),
    )
    links.append(link)
    await link.up()
    request = link.join_request(lease_id=lease, tenant_id=tenant_id, underlay_host=ip)
    outcome = await nets.join(*sign_join(miner_key, request, gateway_hotkey=nets.gateway_hotkey))
    return Host(name, link, lease, tenant_id, miner_key.ss58_address), outcome


async def _deliver(hosts: dict[str, Host], deliveries: list[Delivery]) -> None:
    by_lease = {h.lease_id: h for h in hosts.values()}
    for d in deliveries:
        host = by_lease[d.lease_id]
        assert d.miner_hotkey == host.miner_hotkey
        verdict = await host.link.apply(d.message)
        assert verdict.ok, (host.name, verdict)


def _reach(underlay: Underlay, src: Host, *dst: Host, expect: bool) -> dict[str, bool]:
    timeout = REACH_S if expect else SILENCE_S
    got = underlay.reachable(src.name, [d.address for d in dst], timeout_s=timeout)
    return {d.name: got[d.address] for d in dst}


async def test_tenant_networks_over_real_wireguard(
    underlay: Underlay, store: Store, links: list[MemberLink]
) -> None:
    p = parties()
    nets = networks(store, p)
    tenant_a, tenant_b = await new_tenant(store, "acme"), await new_tenant(store, "other")
    hosts: dict[str, Host] = {}
    for name, tenant, miner in [("a1", tenant_a, "a"), ("a2", tenant_a, "b"),
                                ("b1", tenant_b, "b"), ("a3", tenant_a, "a")]:  # fmt: skip
        host, outcome = await _host(
            underlay, links, nets, p, name=name, tenant_id=tenant, miner=miner
        )
        hosts[name] = host
        await _deliver(hosts, [outcome.own, *outcome.updates])
    a1, a2, a3, b1 = (hosts[n] for n in ("a1", "a2", "a3", "b1"))
    assert await a1.link.peer_keys() == {a2.link.keys.public_key, a3.link.keys.public_key}  # type: ignore[union-attr]

    # Reachability inside tenant A, across miners.
    assert _reach(underlay, a1, a2, a3, expect=True) == {"a2": True, "a3": True}
    assert _reach(underlay, a2, a1, a3, expect=True) == {"a1": True, "a3": True}

    # Isolation between tenants, both ways.
    assert _reach(underlay, a1, b1, expect=False) == {"b1": False}
    assert _reach(underlay, b1, a1, a2, expect=False) == {"a1": False, "a2": False}

    # B's member aims a peer at a1 with a1's real public key and endpoint: a1 does not know
    # b1's key, so no handshake completes.
    b1_if = b1.link.ifname
    underlay.run("b1", "wg", "set", b1_if, "peer", a1.link.keys.public_key,  # type: ignore[union-attr]
                 "endpoint", f"{underlay.hosts['a1']}:{LISTEN_PORT}",
                 "allowed-ips", f"{a1.address}/32")  # fmt: skip
    underlay.run("b1", "ip", "route", "add", f"{a1.address}/32", "dev", b1_if)
    assert _reach(underlay, b1, a1, expect=False) == {"a1": False}

    # A peer set not signed by the gateway (here: adding b1 to a1) changes nothing.
    genuine = PeerSet.model_validate_json((await nets.peers(a1.lease_id)).message.body)
    assert (await a1.link.apply((await nets.peers(a1.lease_id)).message)).ok
    forged_set = genuine.model_copy(update={"epoch": genuine.epoch + 100})
    forged = sign_peer_set(keypair(), forged_set, miner_hotkey=a1.miner_hotkey)
    verdict = await a1.link.apply(forged)
    assert verdict.refusal is PeerSetRefusal.WRONG_SIGNER
    assert len(await a1.link.peer_keys()) == 2

    # Release a2: the others drop it at a new epoch; a2 keeps its interface and its keys.
    before_release = await nets.peers(a1.lease_id)  # a valid peer set that still names a2
    updates = await nets.leave(a2.lease_id)
    assert sorted(d.lease_id for d in updates) == sorted([a1.lease_id, a3.lease_id])
    await _deliver(hosts, updates)
    assert await a1.link.peer_keys() == {a3.link.keys.public_key}  # type: ignore[union-attr]
    assert _reach(underlay, a2, a1, a3, expect=False) == {"a1": False, "a3": False}
    assert _reach(underlay, a1, a2, expect=False) == {"a2": False}
    assert _reach(underlay, a1, a3, expect=True) == {"a3": True}
    # The pre-release peer set, genuine and unexpired but of an older epoch, cannot bring a2 back.
    stale = await a1.link.apply(before_release.message)
    assert stale.refusal is PeerSetRefusal.REPLAYED
    assert _reach(underlay, a2, a1, expect=False) == {"a1": False}

    # The worker ends the lease: interface gone, key forgotten.
    await a2.link.down()
    assert a2.link.keys is None
    assert a2.link.ifname not in underlay.run("a2", "ip", "-brief", "link")
    assert await nets.rejections() == []  # every genuine join went through
