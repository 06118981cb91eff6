"""The gateway's TenantNetworks on a real store (SQLite and PostgreSQL): joins, refusals
recorded with their reason, leaving, refreshing, and disjoint addressing under concurrency."""

from __future__ import annotations

import asyncio
import ipaddress
import time

import pytest

from byteleap.gateway.private_networks import Delivery
from byteleap.net.wireguard import (
    JoinRefusal,
    JoinRejected,
    NotAMember,
    PeerSet,
    PeerSetVerifier,
    WireGuardKeyPair,
)
from byteleap.protocol.api import LeaseState
from byteleap.store import Store, end_lease
from net.wireguard.wg_fixtures import (
    Parties,
    join_request,
    keypair,
    networks,
    new_lease,
    new_tenant,
    parties,
)


@pytest.fixture
def p() -> Parties:
    return parties()


def _peer_set(d: Delivery) -> PeerSet:
    return PeerSet.model_validate_json(d.message.body)


def _verifier(p: Parties, miner_hotkey: str, lease_id: str, tenant_id: int) -> PeerSetVerifier:
    return PeerSetVerifier(
        lease_id=lease_id,
        tenant_id=tenant_id,
        miner_hotkey=miner_hotkey,
        gateway_hotkey=p.gateway.ss58_address,
    )


async def test_members_of_one_tenant_see_each_other_and_only_each_other(
    store: Store, p: Parties
) -> None:
    nets = networks(store, p)
    acme, other = await new_tenant(store), await new_tenant(store)
    a1 = await new_lease(store, acme, p.miner_a.ss58_address)
    a2 = await new_lease(store, acme, p.miner_b.ss58_address)
    b1 = await new_lease(store, other, p.miner_b.ss58_address)
    key1, key2 = WireGuardKeyPair.generate().public_key, WireGuardKeyPair.generate().public_key

    first = await nets.join(
        *join_request(p.miner_a, p.gateway.ss58_address, lease_id=a1, tenant_id=acme,
                      public_key=key1, endpoint="192.0.2.1:51820")
    )  # fmt: skip
    assert first.updates == []
    own1 = _peer_set(first.own)
    assert own1.peers == () and own1.epoch == 1
    assert ipaddress.IPv4Address(own1.address) in ipaddress.IPv4Network(own1.subnet)

    second = await nets.join(
        *join_request(p.miner_b, p.gateway.ss58_address, lease_id=a2, tenant_id=acme,
                      public_key=key2, endpoint="192.0.2.2:51820")
    )  # fmt: skip
    own2 = _peer_set(second.own)
    assert own2.epoch == 2 and own2.subnet == own1.subnet and own2.address != own1.address
    assert [(x.public_key, x.endpoint, x.allowed_ip) for x in own2.peers] == [
        (key1, "192.0.2.1:51820", f"{own1.address}/32")
    ]
    [update] = second.updates
    assert update.miner_hotkey == p.miner_a.ss58_address and update.lease_id == a1
    assert [x.public_key for x in _peer_set(update).peers] == [key2]

    # Each delivery is for its own member's miner: the member accepts it, the other refuses.
    assert _verifier(p, p.miner_a.ss58_address, a1, acme).check(update.message).ok
    assert not _verifier(p, p.miner_b.ss58_address, a1, acme).check(update.message).ok

    other_join = await nets.join(*join_request(p.miner_b, p.gateway.ss58_address, lease_id=b1,
                                               tenant_id=other))  # fmt: skip
    theirs = _peer_set(other_join.own)
    assert other_join.updates == [] and theirs.peers == ()
    assert not ipaddress.IPv4Network(theirs.subnet).overlaps(ipaddress.IPv4Network(own1.subnet))
    assert {m.lease_id for m in await nets.members(acme)} == {a1, a2}


async def _refusal(nets_join: object, headers: dict[str, str], body: bytes) -> JoinRefusal:
    assert callable(nets_join)
    with pytest.raises(JoinRejected) as info:
        await nets_join(headers, body)
    return info.value.refusal


async def test_joining_another_tenants_network_is_refused_and_recorded(
    store: Store, p: Parties
) -> None:
    nets = networks(store, p)
    victim, attacker = await new_tenant(store), await new_tenant(store)
    victims_lease = await new_lease(store, victim, p.miner_a.ss58_address)
    await nets.join(*join_request(p.miner_a, p.gateway.ss58_address, lease_id=victims_lease,
                                  tenant_id=victim))  # fmt: skip
    attackers_lease = await new_lease(store, attacker, p.miner_b.ss58_address)
    refusal = await _refusal(
        nets.join,
        *join_request(p.miner_b, p.gateway.ss58_address, lease_id=attackers_lease,
                      tenant_id=victim),
    )  # fmt: skip
    assert refusal is JoinRefusal.WRONG_TENANT
    assert {m.lease_id for m in await nets.members(victim)} == {victims_lease}
    [recorded] = await nets.rejections()
    assert recorded.reason == "wrong_tenant"
    assert (recorded.tenant_id, recorded.lease_id) == (victim, attackers_lease)
    assert recorded.caller_hotkey == p.miner_b.ss58_address


async def test_forged_replayed_and_misdirected_joins_are_refused(
    sqlite_store: Store, p: Parties
) -> None:
    nets = networks(sqlite_store, p)
    tenant = await new_tenant(sqlite_store)
    lease = await new_lease(sqlite_store, tenant, p.miner_a.ss58_address)
    gw = p.gateway.ss58_address

    headers, body = join_request(p.miner_a, gw, lease_id=lease, tenant_id=tenant)
    tampered = body.replace(b"192.0.2.10", b"192.0.2.66")
    assert await _refusal(nets.join, headers, tampered) is JoinRefusal.BAD_SIGNATURE
    # A miner that does not host the lease signs a well-formed request for it.
    assert (
        await _refusal(nets.join, *join_request(p.miner_b, gw, lease_id=lease, tenant_id=tenant))
        is JoinRefusal.WRONG_MINER
    )
    assert await _refusal(
        nets.join, *join_request(p.miner_a, keypair().ss58_address, lease_id=lease,
                                 tenant_id=tenant)
    ) is JoinRefusal.WRONG_RECEIVER  # fmt: skip
    assert await _refusal(nets.join, {}, body) is JoinRefusal.MALFORMED_AUTH
    assert (
        await _refusal(
            nets.join, *join_request(p.miner_a, gw, lease_id="lease_nonexistent", tenant_id=tenant)
        )
        is JoinRefusal.UNKNOWN_LEASE
    )

    await nets.join(headers, body)  # the genuine one
    assert await _refusal(nets.join, headers, body) is JoinRefusal.REPLAYED
    reasons = [r.reason for r in reversed(await nets.rejections())]
    assert reasons == [
        "bad_signature", "wrong_miner", "wrong_receiver", "malformed_auth", "unknown_lease",
        "replayed",
    ]  # fmt: skip


async def test_malformed_and_oversized_bodies_are_refused(sqlite_store: Store, p: Parties) -> None:
    from byteleap.net.auth import sign_request
    from byteleap.net.wireguard import JOIN_PATH

    nets = networks(sqlite_store, p)
    for body in (b"{}", b"not json", b'{"type":"wg_join"}' + b" " * 5000):
        headers = sign_request(
            p.miner_a, method="POST", path=JOIN_PATH, body=body, receiver=p.gateway.ss58_address
        )
        assert await _refusal(nets.join, headers, body) is JoinRefusal.MALFORMED


async def test_a_public_key_is_never_accepted_twice(sqlite_store: Store, p: Parties) -> None:
    nets = networks(sqlite_store, p)
    tenant = await new_tenant(sqlite_store)
    gw = p.gateway.ss58_address
    first = await new_lease(sqlite_store, tenant, p.miner_a.ss58_address)
    key = WireGuardKeyPair.generate().public_key
    await nets.join(*join_request(p.miner_a, gw, lease_id=first, tenant_id=tenant, public_key=key))
    await nets.leave(first)
    second = await new_lease(sqlite_store, tenant, p.miner_a.ss58_address)
    assert (
        await _refusal(
            nets.join,
            *join_request(p.miner_a, gw, lease_id=second, tenant_id=tenant, public_key=key),
        )
        is JoinRefusal.KEY_REUSED
    )
    # The released lease cannot come back either, even with a new key.
    assert (
        await _refusal(nets.join, *join_request(p.miner_a, gw, lease_id=first, tenant_id=tenant))
        is JoinRefusal.LEASE_NOT_LIVE
    )


async def test_a_member_keeps_its_key_but_may_move_its_endpoint(
    sqlite_store: Store, p: Parties
) -> None:
    nets = networks(sqlite_store, p)
    tenant = await new_tenant(sqlite_store)
    gw = p.gateway.ss58_address
    lease = await new_lease(sqlite_store, tenant, p.miner_a.ss58_address)
    key = WireGuardKeyPair.generate().public_key
    await nets.join(*join_request(p.miner_a, gw, lease_id=lease, tenant_id=tenant, public_key=key))
    moved = await nets.join(*join_request(p.miner_a, gw, lease_id=lease, tenant_id=tenant,
                                          public_key=key, endpoint="192.0.2.77:4000"))  # fmt: skip
    assert _peer_set(moved.own).epoch == 2
    [member] = await nets.members(tenant)
    assert member.endpoint == "192.0.2.77:4000"
    assert (
        await _refusal(nets.join, *join_request(p.miner_a, gw, lease_id=lease, tenant_id=tenant))
        is JoinRefusal.KEY_CHANGED
    )


async def test_ended_leases_cannot_join(sqlite_store: Store, p: Parties) -> None:
    nets = networks(sqlite_store, p)
    tenant = await new_tenant(sqlite_store)
    lease = await new_lease(sqlite_store, tenant, p.miner_a.ss58_address)
    async with sqlite_store.session() as s:
        await end_lease(s, lease, LeaseState.RELEASED, at=time.time())
    assert await _refusal(
        nets.join, *join_request(p.miner_a, p.gateway.ss58_address, lease_id=lease,
                                 tenant_id=tenant)
    ) is JoinRefusal.LEASE_NOT_LIVE  # fmt: skip


async def test_a_full_network_refuses_more_members(sqlite_store: Store, p: Parties) -> None:
    nets = networks(sqlite_store, p, max_members=2)
    tenant = await new_tenant(sqlite_store)
    gw = p.gateway.ss58_address
    for _ in range(2):
        lease = await new_lease(sqlite_store, tenant, p.miner_a.ss58_address)
        await nets.join(*join_request(p.miner_a, gw, lease_id=lease, tenant_id=tenant))
    lease = await new_lease(sqlite_store, tenant, p.miner_a.ss58_address)
    assert (
        await _refusal(nets.join, *join_request(p.miner_a, gw, lease_id=lease, tenant_id=tenant))
        is JoinRefusal.NETWORK_FULL
    )


async def test_leaving_gives_the_others_a_new_epoch_without_the_member(
    store: Store, p: Parties
) -> None:
    nets = networks(store, p)
    tenant = await new_tenant(store)
    gw = p.gateway.ss58_address
    leases = [await new_lease(store, tenant, p.miner_a.ss58_address) for _ in range(3)]
    keys = [WireGuardKeyPair.generate().public_key for _ in leases]
    for lease, key in zip(leases, keys, strict=True):
        await nets.join(*join_request(p.miner_a, gw, lease_id=lease, tenant_id=tenant,
                                      public_key=key))  # fmt: skip
    [leaver] = [m for m in await nets.members(tenant) if m.lease_id == leases[1]]
    updates = await nets.leave(leases[1])
    assert sorted(d.lease_id for d in updates) == sorted([leases[0], leases[2]])
    for d in updates:
        ps = _peer_set(d)
        assert ps.epoch == 4
        assert keys[1] not in {x.public_key for x in ps.peers}
        assert len(ps.peers) == 1
    assert await nets.leave(leases[1]) == []  # once
    assert await nets.leave("lease_never_joined") == []
    with pytest.raises(NotAMember):
        await nets.peers(leases[1])
    refreshed = _peer_set(await nets.peers(leases[0]))
    assert refreshed.epoch == 5 and len(refreshed.peers) == 1
    # A new member takes the lowest free address: the one the leaver held.
    newcomer = await new_lease(store, tenant, p.miner_b.ss58_address)
    joined = await nets.join(*join_request(p.miner_b, gw, lease_id=newcomer, tenant_id=tenant))
    assert _peer_set(joined.own).address == leaver.address


async def test_concurrent_joins_get_distinct_addresses_and_subnets(
    store: Store, p: Parties
) -> None:
    nets = networks(store, p)
    gw = p.gateway.ss58_address
    tenants = [await new_tenant(store) for _ in range(3)]
    requests = []
    for tenant in tenants:
        for _ in range(4):
            lease = await new_lease(store, tenant, p.miner_a.ss58_address)
            requests.append(join_request(p.miner_a, gw, lease_id=lease, tenant_id=tenant))
    outcomes = await asyncio.gather(*(nets.join(h, b) for h, b in requests))
    owns = [_peer_set(o.own) for o in outcomes]
    assert len({ps.address for ps in owns}) == len(owns)
    subnets = {ps.tenant_id: ps.subnet for ps in owns}
    assert len(set(subnets.values())) == len(tenants)
    for ps in owns:
        assert subnets[ps.tenant_id] == ps.subnet
    for tenant in tenants:
        assert len(await nets.members(tenant)) == 4
