"""The gateway's private-network wiring: the miners' join route over HTTP (ASGI) on a real
store, refusals as 403 with their reason, the lease hooks and the sweep, the settings."""

from __future__ import annotations

from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI

from byteleap.config import GatewayNetworkSettings, GatewaySettings
from byteleap.gateway.errors import InvalidSpec
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.networks_api import network_settings, private_networks
from byteleap.gateway.port import Tenant
from byteleap.net.wireguard import NetworkSettings, PeerSetVerifier, SignedPeerSet
from byteleap.net.wireguard.messages import MAX_JOIN_BYTES
from byteleap.protocol.api import LeaseSpec, LeaseState
from byteleap.store import Store, end_lease
from byteleap.store.leases import list_leases
from net.wireguard.gateway_fixtures import NoMiners, asgi, private_gateway, wire_lease
from net.wireguard.wg_fixtures import Parties, join_request, new_tenant, parties


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


@pytest.fixture
def p() -> Parties:
    return parties()


async def _post(app: FastAPI, headers: dict[str, str], body: bytes) -> httpx.Response:
    async with httpx.AsyncClient(transport=asgi(app), base_url="http://gw") as http:
        return await http.post("/v1/networks/join", content=body, headers=headers)


def test_settings_defaults_are_the_networks_defaults() -> None:
    assert network_settings(GatewayNetworkSettings()) == NetworkSettings()
    off = GatewaySettings()
    assert off.networks.enabled is False
    # Off by default: nothing else is looked at, nothing is built.
    unused = cast(Any, None)
    built = private_networks(
        off, store=unused, wallet=unused, gateway_hotkey="", pool=unused, chain=unused,
        wire_id=str,
    )  # fmt: skip
    assert built is None


async def test_a_miner_joins_its_lease_and_gets_a_peer_set_its_worker_accepts(
    store: Store, p: Parties
) -> None:
    networks, app, supply = private_gateway(store, p)
    tenant = await new_tenant(store)
    first = await wire_lease(store, tenant, p.miner_a.ss58_address, "w-" + "1" * 16)
    second = await wire_lease(store, tenant, p.miner_b.ss58_address, "w-" + "2" * 16)
    assert (await _post(app, *join_request(p.miner_a, p.gateway.ss58_address, lease_id=first,
                                           tenant_id=tenant))).status_code == 200  # fmt: skip
    answer = await _post(
        app, *join_request(p.miner_b, p.gateway.ss58_address, lease_id=second, tenant_id=tenant)
    )
    assert answer.status_code == 200
    verifier = PeerSetVerifier(
        lease_id=second,
        tenant_id=tenant,
        miner_hotkey=p.miner_b.ss58_address,
        gateway_hotkey=p.gateway.ss58_address,
    )
    verdict = verifier.check(SignedPeerSet.model_validate_json(answer.content))
    assert verdict.ok and verdict.peer_set is not None and len(verdict.peer_set.peers) == 1
    await networks.flush()
    # The first member's new set was pushed to its miner (unreachable here: logged only).
    assert p.miner_a.ss58_address in supply.asked


@pytest.mark.adversarial
async def test_refused_joins_answer_403_with_the_reason_and_are_recorded(
    store: Store, p: Parties
) -> None:
    async def registered(hotkey: str) -> bool:
        return hotkey != p.miner_b.ss58_address

    _, app, _ = private_gateway(store, p, authorize=registered)
    acme, other = await new_tenant(store), await new_tenant(store)
    lease = await wire_lease(store, acme, p.miner_a.ss58_address, "w-" + "3" * 16)
    gw = p.gateway.ss58_address
    # A tenant's miner claims its lease is another tenant's (joining a foreign network).
    foreign = await _post(app, *join_request(p.miner_a, gw, lease_id=lease, tenant_id=other))
    assert (foreign.status_code, foreign.json()["error"]) == (403, "wrong_tenant")
    # A body other than the one signed.
    headers, _ = join_request(p.miner_a, gw, lease_id=lease, tenant_id=acme)
    tampered = await _post(app, headers, b"{}")
    assert (tampered.status_code, tampered.json()["error"]) == (403, "bad_signature")
    # A signer that may not call the gateway at all.
    outsider = await _post(app, *join_request(p.miner_b, gw, lease_id=lease, tenant_id=acme))
    assert (outsider.status_code, outsider.json()["error"]) == (403, "not_permitted")
    headers, _ = join_request(p.miner_a, p.gateway.ss58_address, lease_id=lease, tenant_id=acme)
    huge = await _post(app, headers, b"x" * (MAX_JOIN_BYTES * 4))
    assert (huge.status_code, huge.json()["error"]) == (403, "malformed")
    networks, _, _ = private_gateway(store, p)
    reasons = sorted(r.reason for r in await networks.nets.rejections())
    assert reasons == ["bad_signature", "malformed", "not_permitted", "wrong_tenant"]
    assert await networks.nets.members(acme) == []


async def test_an_ended_lease_leaves_by_hook_or_by_sweep(store: Store, p: Parties) -> None:
    networks, app, _ = private_gateway(store, p)
    tenant = await new_tenant(store)
    leases = [
        await wire_lease(store, tenant, p.miner_a.ss58_address, f"w-{i:016x}") for i in range(3)
    ]
    for lease in leases:
        signed = join_request(p.miner_a, p.gateway.ss58_address, lease_id=lease, tenant_id=tenant)
        assert (await _post(app, *signed)).status_code == 200
    async with store.session() as s:
        ended = await end_lease(s, leases[0], LeaseState.RELEASED, at=1.0)
        await end_lease(s, leases[1], LeaseState.FAILED, at=1.0)  # ended past the hook
    await networks.ended(ended)
    assert {m.lease_id for m in await networks.nets.members(tenant)} == set(leases[1:])
    assert await networks.sweep() == 1
    assert [m.lease_id for m in await networks.nets.members(tenant)] == [leases[2]]
    assert await networks.sweep() == 0
    await networks.close()


async def test_a_private_lease_is_refused_where_networks_are_off(store: Store) -> None:
    desk = LeaseDesk(
        store, NoMiners(), GatewaySettings(), hotkey=cast(Any, None), netuid=1, secret=b"s" * 20
    )
    tenant = Tenant(id=1, name="t", balance=1.0, max_running_jobs=1, max_queued_jobs=1)
    with pytest.raises(InvalidSpec) as refused:
        await desk.create(tenant, LeaseSpec(duration_s=60, network="private"))
    assert refused.value.field == "network"
    assert LeaseSpec(duration_s=60).network is None
    async with store.session() as s:
        assert await list_leases(s) == []  # refused before anything was reserved or stored
