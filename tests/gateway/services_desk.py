"""A real `ServiceDesk` over a SQLite store, on a network with no miners: every customer-facing
route of services works (create, get, list, scale, update, delete; invoke answers that no
replica is ready); nothing is ever placed.

`lazy_desk` connects to nothing until `Desk.setup`, so a module can mount it into an app it
builds at import (schemathesis reads the spec then) and still leave no database connection —
whose thread would keep the interpreter from exiting — when none of its tests runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from byteleap.config import GatewaySettings
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.scheduler import WorkerOffer
from byteleap.gateway.service_desk import ServiceDesk
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.store import Store, upgrade


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
    url: str
    names: tuple[str, ...]
    store: Store
    tenants: GatewayService  # authenticates the keys below
    desk: ServiceDesk
    keys: dict[str, str] = field(default_factory=dict)  # tenant name -> API key

    async def setup(self) -> None:
        """Migrate the store and add the tenants (ids 1, 2, … in the order of ``names``)."""
        await upgrade(self.url)
        for number, name in enumerate(self.names, start=1):
            self.keys[name] = await create_tenant_with_key(self.store, name, balance=100.0)
            assert (await self.tenants.authenticate(self.keys[name])).id == number

    async def close(self) -> None:
        await self.desk.close()
        await self.store.close()


def _foreign_keys_on(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # as the real store has them
    cursor.close()


def lazy_desk(
    url: str, names: tuple[str, ...] = ("alice", "bob"), settings: GatewaySettings | None = None
) -> Desk:
    """A desk over the SQLite file at ``url``; nothing is opened before `Desk.setup`."""
    settings = settings or GatewaySettings()
    engine = create_async_engine(url)
    sa.event.listen(engine.sync_engine, "connect", _foreign_keys_on)
    store = Store(engine, sa.make_url(url))
    pool = NoMiners()
    # Leases are never signed here: no replica is ever placed without miners.
    leasing = LeaseDesk(store, pool, settings, hotkey=cast(Any, None), netuid=1, secret=b"s" * 20)
    return Desk(
        url,
        names,
        store,
        GatewayService(store, pool, settings, leasing=leasing),
        ServiceDesk(store, pool, settings, leasing=leasing),
    )


async def open_desk(
    url: str, names: tuple[str, ...] = ("alice", "bob"), settings: GatewaySettings | None = None
) -> Desk:
    desk = lazy_desk(url, names, settings)
    await desk.setup()
    return desk
