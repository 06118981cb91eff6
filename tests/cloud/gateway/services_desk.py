"""A real `ServiceDesk` over a migrated SQLite store, on a network with no miners: every
customer-facing route of services works (create, get, list, scale, update, delete, invoke
answers that no replica is ready); nothing is ever placed."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from byteleap.cloud.gateway.leasing import LeaseDesk
from byteleap.cloud.gateway.service import GatewayService, create_tenant_with_key
from byteleap.cloud.gateway.services import ServiceDesk
from byteleap.cloud.scheduler import WorkerOffer
from byteleap.config import GatewaySettings
from byteleap.store import Store, open_store, upgrade
from byteleap.validator.miner_client import MinerCallError, MinerClient


class NoMiners:
    """The supply of a network with no miner registered."""

    async def offers(self) -> list[WorkerOffer]:
        return []

    async def client(self, hotkey: str) -> MinerClient:
        raise MinerCallError(f"miner {hotkey} is not on the metagraph", reason="unknown_miner")

    async def close(self) -> None:
        return None


@dataclass
class Desk:
    store: Store
    tenants: GatewayService  # authenticates the keys below
    desk: ServiceDesk
    keys: dict[str, str]  # tenant name -> API key

    async def close(self) -> None:
        await self.desk.close()
        await self.store.close()


async def open_desk(
    url: str, names: tuple[str, ...] = ("alice", "bob"), settings: GatewaySettings | None = None
) -> Desk:
    """A desk over a fresh store at ``url`` with the tenants ``names`` (ids 1, 2, … in order)."""
    settings = settings or GatewaySettings()
    await upgrade(url)
    store = await open_store(url)
    pool = NoMiners()
    # Leases are never signed here: no replica is ever placed without miners.
    leasing = LeaseDesk(store, pool, settings, hotkey=cast(Any, None), netuid=1, secret=b"s" * 20)
    keys = {name: await create_tenant_with_key(store, name, balance=100.0) for name in names}
    return Desk(
        store,
        GatewayService(store, pool, settings, leasing=leasing),
        ServiceDesk(store, pool, settings, leasing=leasing),
        keys,
    )
