"""The miner's relay of private-network messages, against the gateway's real join route
(in-process over ASGI, on a real store): it signs joins only for its own worker's lease and
tenant, hands the gateway's answer to the worker, and takes the link down when the join is
refused or the lease ends."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator

import pytest

from byteleap.miner.errors import LeaseRefused
from byteleap.miner.leases import MinerLease
from byteleap.miner.links import WorkerLink
from byteleap.miner.networks import LeaseNetworks
from byteleap.net.messages import (
    LeaseNetwork,
    LeaseRequest,
    MinerToWorker,
    NetworkDown,
    NetworkJoin,
    NetworkPeers,
    NetworkUp,
    parse_miner_message,
)
from byteleap.net.wireguard import JoinRequest, PeerSetVerifier, WireGuardKeyPair
from byteleap.store import Store
from net.wireguard.gateway_fixtures import GATEWAY_URL, asgi, private_gateway, wire_lease
from net.wireguard.wg_fixtures import Parties, new_tenant, parties

WORKER = "w-" + "a" * 16
WORKER_IP = "192.0.2.7"


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


class Worker:
    """The worker's end of a real `WorkerLink`: what the miner sent it, in order."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[MinerToWorker] = asyncio.Queue()
        self.link = WorkerLink(WORKER, self._receive)

    async def _receive(self, text: str) -> None:
        await self.received.put(parse_miner_message(text))

    async def next(self) -> MinerToWorker:
        return await asyncio.wait_for(self.received.get(), 5.0)


def _lease(lease_id: str, gateway: str) -> MinerLease:
    request = LeaseRequest(lease_id=lease_id, worker_id=WORKER, ends_at=time.time() + 600)
    return MinerLease(request, gateway, started_at=time.time())


def _network(tenant_id: int) -> LeaseNetwork:
    return LeaseNetwork(
        tenant_id=tenant_id,
        join_url=GATEWAY_URL + "/v1/networks/join",
        validity_s=120,
        skew_s=5,
        keepalive_s=25,
    )


def _join(lease_id: str, tenant_id: int) -> NetworkJoin:
    request = JoinRequest(
        lease_id=lease_id,
        tenant_id=tenant_id,
        public_key=WireGuardKeyPair.generate().public_key,
        endpoint=f"{WORKER_IP}:51820",
    )
    return NetworkJoin(request=request)


@pytest.fixture
async def relay(store: Store) -> AsyncIterator[tuple[LeaseNetworks, Worker, Parties]]:
    p = parties()
    _, app, _ = private_gateway(store, p)
    worker = Worker()
    networks = LeaseNetworks(
        p.miner_a,
        p.miner_a.ss58_address,
        {WORKER: worker.link},
        lambda _worker: WORKER_IP,
        transport=asgi(app),
    )
    yield networks, worker, p
    await networks.close()
    await worker.link.close("test over")


async def test_a_join_is_signed_relayed_and_answered_with_a_peer_set_the_worker_accepts(
    relay: tuple[LeaseNetworks, Worker, Parties], store: Store
) -> None:
    networks, worker, p = relay
    tenant = await new_tenant(store)
    lease_id = await wire_lease(store, tenant, p.miner_a.ss58_address, WORKER)
    lease = _lease(lease_id, p.gateway.ss58_address)
    networks.attach(lease, _network(tenant))
    networks.attach(lease, _network(tenant))  # a retried attach changes nothing
    up = await worker.next()
    assert isinstance(up, NetworkUp)
    assert (up.lease_id, up.tenant_id, up.underlay_host) == (lease_id, tenant, WORKER_IP)
    assert (up.gateway_hotkey, up.miner_hotkey) == (p.gateway.ss58_address, p.miner_a.ss58_address)
    with pytest.raises(LeaseRefused):
        networks.attach(lease, _network(tenant + 1))

    networks.on_join("w-" + "b" * 16, _join(lease_id, tenant))  # another worker: ignored
    networks.on_join(WORKER, _join(lease_id, tenant))
    peers = await worker.next()
    assert isinstance(peers, NetworkPeers) and peers.lease_id == lease_id
    verifier = PeerSetVerifier(
        lease_id=lease_id,
        tenant_id=tenant,
        miner_hotkey=up.miner_hotkey,
        gateway_hotkey=up.gateway_hotkey,
    )
    assert verifier.check(peers.peer_set).ok

    # The gateway's later pushes reach the worker until the lease ends; then the link goes.
    networks.relay(lease, peers.peer_set)
    assert isinstance(await worker.next(), NetworkPeers)
    lease.ended_at, lease.detail = time.time(), "released"
    networks.lease_ended(lease)
    down = await worker.next()
    assert isinstance(down, NetworkDown) and down.reason == "released"
    with pytest.raises(LeaseRefused):
        networks.relay(lease, peers.peer_set)
    assert worker.received.empty()


@pytest.mark.adversarial
async def test_a_join_for_another_tenant_is_never_signed(
    relay: tuple[LeaseNetworks, Worker, Parties], store: Store
) -> None:
    networks, worker, p = relay
    tenant, other = await new_tenant(store), await new_tenant(store)
    lease_id = await wire_lease(store, tenant, p.miner_a.ss58_address, WORKER)
    networks.attach(_lease(lease_id, p.gateway.ss58_address), _network(tenant))
    assert isinstance(await worker.next(), NetworkUp)
    networks.on_join(WORKER, _join(lease_id, other))
    down = await worker.next()
    assert isinstance(down, NetworkDown) and "another tenant" in down.reason
    assert networks.attached(lease_id) is None
    networks_gw, _, _ = private_gateway(store, p)
    assert await networks_gw.nets.rejections() == []  # it never reached the gateway


async def test_a_join_the_gateway_refuses_takes_the_link_down_with_the_reason(
    relay: tuple[LeaseNetworks, Worker, Parties], store: Store
) -> None:
    networks, worker, p = relay
    tenant = await new_tenant(store)
    unknown = secrets.token_hex(16)  # a lease the gateway never made
    networks.attach(_lease(unknown, p.gateway.ss58_address), _network(tenant))
    assert isinstance(await worker.next(), NetworkUp)
    networks.on_join(WORKER, _join(unknown, tenant))
    down = await worker.next()
    assert isinstance(down, NetworkDown)
    assert down.reason.startswith("join refused: 403 unknown_lease")
    assert networks.attached(unknown) is None
