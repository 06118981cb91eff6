"""The gateway's private-network routes on a real store, served in-process (ASGI) for the
gateway's and the miner's tests; miners are reached through `NoMiners` (none is running)."""

from __future__ import annotations

import secrets
import time

import httpx
from fastapi import FastAPI

from byteleap.config import GatewayNetworkSettings
from byteleap.gateway.networks_api import PrivateNetworks, mount_networks, network_settings
from byteleap.gateway.private_networks import TenantNetworks
from byteleap.gateway.scheduler import WorkerOffer
from byteleap.net.auth import Authorize
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.protocol.api import LeaseState
from byteleap.store import LeaseRecord, Store, insert_lease
from net.wireguard.wg_fixtures import Parties

GATEWAY_URL = "http://gateway.test"


class NoMiners:
    """A supply with no reachable miner: every push is logged as not delivered."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def offers(self) -> list[WorkerOffer]:
        return []

    async def client(self, hotkey: str) -> MinerClient:
        self.asked.append(hotkey)
        raise MinerCallError(f"miner {hotkey} is not on the metagraph", reason="unknown_miner")

    async def close(self) -> None:
        return None


async def _allow(_hotkey: str) -> bool:
    return True


def private_gateway(
    store: Store, p: Parties, *, authorize: Authorize = _allow
) -> tuple[PrivateNetworks, FastAPI, NoMiners]:
    settings = GatewayNetworkSettings(enabled=True, public_url=GATEWAY_URL)
    nets = TenantNetworks(
        store,
        gateway=p.gateway,
        gateway_hotkey=p.gateway.ss58_address,
        settings=network_settings(settings),
        authorize=authorize,
    )
    supply = NoMiners()
    networks = PrivateNetworks(
        nets, supply, settings, join_url=GATEWAY_URL + "/v1/networks/join", wire_id=lambda x: x
    )
    app = FastAPI()
    mount_networks(app, networks)
    return networks, app, supply


def asgi(app: FastAPI) -> httpx.ASGITransport:
    return httpx.ASGITransport(app=app)


async def wire_lease(store: Store, tenant_id: int, miner_hotkey: str, worker_id: str) -> str:
    """A live lease whose id is also its wire id (32 hex, as miners know leases)."""
    now = time.time()
    record = LeaseRecord(
        id=secrets.token_hex(16),
        tenant_id=tenant_id,
        state=LeaseState.ACTIVE,
        spec_json='{"duration_s": 600, "network": "private"}',
        worker_id=worker_id,
        miner_hotkey=miner_hotkey,
        gpu_model="cpu",
        gpu_count=1,
        price_per_s=0.0001,
        unit_price_micro=100,
        created_at=now,
        ends_at=now + 600,
        ended_at=None,
        billed_until=now,
        cost=0.0,
        receipts=0,
    )
    async with store.session() as s:
        await insert_lease(s, record)
    return record.id
