"""Private leases end to end: a gateway, two miners and workers on their own hosts (network
namespaces), all real processes but the gateway, which runs in the test over real HTTP.

Tenant A's two private leases land on workers of different miners; each worker brings up a
WireGuard link for its lease, its miner signs and relays the join, the gateway answers and
pushes the other member's new peer set, and the two leases reach each other over the
overlay. Tenant B's private lease reaches neither, even with a route aimed at A's subnet.
Releasing one of A's leases takes its link down and drops it from the other's peers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from byteleap.chain.local.client import LocalChain
from byteleap.config import GatewaySettings
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.miners import MinerPool
from byteleap.gateway.networks_api import PrivateNetworks, mount_networks, private_networks
from byteleap.gateway.port import Tenant
from byteleap.keys import ensure_wallet
from byteleap.protocol.api import LeaseSpec, LeaseState, LeaseView
from byteleap.store import Store, open_store, upgrade
from byteleap.worker.networks import ifname_for
from net.wireguard.netns_harness import Underlay, missing_prerequisite
from net.wireguard.private_net_harness import ROOT_IP, PrivateNet, free_port, join_root, start_chain

pytestmark = [pytest.mark.netns, pytest.mark.slow]

# A positive probe must outlast one WireGuard handshake retry (REKEY_TIMEOUT 5 s + jitter):
# the keepalive sends an initiation as soon as one side has its peer, and when the other side
# has not applied its own peer set yet that first initiation is dropped.
REACH_S = 8.0
SILENCE_S = 1.5


@pytest.fixture
def underlay() -> Iterator[Underlay]:
    why = missing_prerequisite()
    if why is not None:
        pytest.skip(why)
    net = Underlay()
    try:
        net.open()
        join_root(net)
    except Exception as exc:  # e.g. a container without CAP_SYS_ADMIN
        net.close()
        pytest.skip(f"cannot create network namespaces here: {exc}")
    try:
        yield net
    finally:
        net.close()


@pytest.fixture
async def private_net(underlay: Underlay, tmp_path: Path) -> AsyncIterator[PrivateNet]:
    net = PrivateNet(
        root=tmp_path,
        underlay=underlay,
        chain_url=f"http://127.0.0.1:{free_port()}",
        gateway=ensure_wallet("gateway", path=tmp_path / "wallets"),
    )
    try:
        await start_chain(net)
        net.add_miner("miner-a")
        net.add_miner("miner-b")
        yield net
    finally:
        net.stop_all()


@contextlib.asynccontextmanager
async def gateway(net: PrivateNet, store: Store) -> AsyncIterator[tuple[LeaseDesk, Any]]:
    port = free_port(ROOT_IP)
    settings = GatewaySettings(
        chain={"url": net.chain_url},
        metagraph_refresh_s=1.0,
        networks={"enabled": True, "public_url": f"http://{ROOT_IP}:{port}", "keepalive_s": 1},
    )
    chain = LocalChain(net.chain_url, timeout_s=5)
    pool = MinerPool(net.gateway, chain, settings)
    desk = LeaseDesk(
        store, pool, settings, hotkey=net.gateway.hotkey, netuid=1,
        secret=b"0123456789abcdef0123", bill_period_s=3600.0,
    )  # fmt: skip
    networks = private_networks(
        settings, store=store, wallet=net.gateway, gateway_hotkey=net.gateway.hotkey.ss58_address,
        pool=pool, chain=chain, wire_id=desk.anonymous_id,
    )  # fmt: skip
    assert isinstance(networks, PrivateNetworks)
    desk.networks = networks
    app = FastAPI()
    mount_networks(app, networks)
    server = uvicorn.Server(
        uvicorn.Config(app, host=ROOT_IP, port=port, log_level="warning", lifespan="off")
    )
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), "the gateway did not start"
        await asyncio.sleep(0.02)
    try:
        yield desk, networks
    finally:
        server.should_exit = True
        await serving
        await networks.close()
        await pool.close()
        await chain.close()


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 30.0
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


def host_of(net: PrivateNet, lease: LeaseView) -> str:
    return next(name for name in net.worker_miner if net.worker_id(name) == lease.worker_id)


def wg_peers(net: PrivateNet, host: str, ifname: str) -> set[str] | None:
    """The interface's peers' public keys, or None when it does not exist."""
    try:
        out = net.underlay.run(host, "wg", "show", ifname, "peers")
    except Exception:
        return None
    return {line for line in out.split() if line}


async def test_private_leases_reach_each_other_and_no_one_else(
    private_net: PrivateNet, sqlite_url: str
) -> None:
    net = private_net
    net.add_worker("h1", net.miners["miner-a"])
    net.add_worker("h2", net.miners["miner-b"])
    await upgrade(sqlite_url)
    store = await open_store(sqlite_url)
    try:
        await net.wait_idle("h1", "h2")
        async with gateway(net, store) as (desk, networks):
            service = GatewayService(store, desk.pool, desk.settings, leasing=desk)
            acme, other = [
                await service.authenticate(await create_tenant_with_key(store, n, balance=50.0))
                for n in ("acme", "other")
            ]
            await _scenario(net, desk, networks, acme, other)
    finally:
        await store.close()


async def _scenario(
    net: PrivateNet, desk: LeaseDesk, networks: PrivateNetworks, acme: Tenant, other: Tenant
) -> None:
    private = LeaseSpec(duration_s=600, network="private")
    a1, a2 = await desk.create(acme, private), await desk.create(acme, private)
    assert {a1.miner_hotkey, a2.miner_hotkey} == {m.hotkey for m in net.miners.values()}
    h1, h2 = host_of(net, a1), host_of(net, a2)
    if1, if2 = ifname_for(desk.anonymous_id(a1.id)), ifname_for(desk.anonymous_id(a2.id))

    async def joined(tenant: Tenant, count: int) -> bool:
        return len(await networks.nets.members(tenant.id)) == count

    await eventually(lambda: joined(acme, 2), "A's leases did not join:\n" + net.log("h1"))
    members = {m.lease_id: m for m in await networks.nets.members(acme.id)}
    m1, m2 = members[a1.id], members[a2.id]

    async def linked() -> bool:
        return wg_peers(net, h1, if1) == {m2.public_key} and wg_peers(net, h2, if2) == {
            m1.public_key
        }

    await eventually(linked, "the peer sets were not applied:\n" + net.log(h1) + net.log(h2))
    reach = net.underlay.reachable
    assert reach(h1, [m2.address], timeout_s=REACH_S) == {m2.address: True}
    assert reach(h2, [m1.address], timeout_s=REACH_S) == {m1.address: True}

    # Another tenant's private lease, on a third host: its own network, no way into A's.
    net.add_worker("h3", net.miners["miner-a"])
    await net.wait_idle("h3")
    b1 = await desk.create(other, private)
    h3, if3 = host_of(net, b1), ifname_for(desk.anonymous_id(b1.id))
    assert h3 == "h3"
    await eventually(lambda: joined(other, 1), "B's lease did not join:\n" + net.log("h3"))
    (mb,) = await networks.nets.members(other.id)
    await eventually(lambda: _has_address(net, h3, if3, mb.address), "B's link has no address")
    assert mb.address.rsplit(".", 1)[0] != m1.address.rsplit(".", 1)[0]  # another /24
    a_subnet = m1.address.rsplit(".", 1)[0] + ".0/24"
    net.underlay.run(h3, "ip", "route", "add", a_subnet, "dev", if3)
    silent = {m1.address: False, m2.address: False}
    assert reach(h3, [m1.address, m2.address], timeout_s=SILENCE_S) == silent
    assert reach(h1, [mb.address], timeout_s=SILENCE_S) == {mb.address: False}
    assert wg_peers(net, h3, if3) == set()

    # Release a2: its link goes, and a1 no longer has it as a peer.
    released = await desk.release(acme, a2.id)
    assert released.state is LeaseState.RELEASED

    async def cut_off() -> bool:
        return wg_peers(net, h2, if2) is None and wg_peers(net, h1, if1) == set()

    await eventually(cut_off, "the released member was not cut off:\n" + net.log(h2))
    assert reach(h1, [m2.address], timeout_s=SILENCE_S) == {m2.address: False}
    assert [m.lease_id for m in await networks.nets.members(acme.id)] == [a1.id]
    assert await networks.nets.rejections() == []  # every genuine join went through

    await desk.release(acme, a1.id)
    await desk.release(other, b1.id)
    await eventually(lambda: _gone(net, [(h1, if1), (h3, if3)]), "links outlived their leases")


async def _has_address(net: PrivateNet, host: str, ifname: str, address: str) -> bool:
    try:
        return address in net.underlay.run(host, "ip", "-brief", "address", "show", ifname)
    except Exception:
        return False


async def _gone(net: PrivateNet, links: list[tuple[str, str]]) -> bool:
    return all(wg_peers(net, host, ifname) is None for host, ifname in links)
