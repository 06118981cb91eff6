"""Tenants' private networks in the running gateway: the lease hooks, the miners' join route,
and the pushes of peer sets to members' miners (the network logic is `net.wireguard`).

- A lease created with ``network: "private"`` is attached once it is stored: its miner is
  told the tenant and where to send the join (``POST /v1/leases/{wire id}/network``).
- The miner relays its worker's `JoinRequest`, signed by the miner's hotkey, to
  ``POST /v1/networks/join``; the answer is the joiner's own `SignedPeerSet`, and every other
  member's new peer set is pushed to its miner (``POST /v1/leases/{wire id}/network/peers``).
  A refused join answers 403 with the refusal (it is stored with its reason as well).
- When a lease ends, its member leaves and the others get a peer set without it. A sweep
  catches the leases that ended on a path without the hook (a failed receipt, a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from bittensor.signing import WalletLike
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response

from byteleap.chain.port import ChainError, ChainPort, Metagraph
from byteleap.config import GatewayNetworkSettings, GatewaySettings
from byteleap.gateway.miners import Supply
from byteleap.gateway.private_networks import Delivery, TenantNetworks
from byteleap.net.messages import LeaseNetwork
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.net.wireguard import JOIN_PATH, JoinRejected, NetworkSettings
from byteleap.net.wireguard.messages import MAX_JOIN_BYTES
from byteleap.protocol.api import LeaseSpec, LeaseState
from byteleap.store import Store
from byteleap.store.leases import LeaseRecord
from byteleap.store.models import Lease, TenantNetworkMember

log = logging.getLogger(__name__)

# One sweep ends at most this many stale members; the next sweep takes the rest.
_SWEEP_BATCH = 500


class RegisteredMiners:
    """Who may send a join at all: hotkeys registered on the subnet, from a metagraph at most
    ``ttl_s`` old (the last good one is kept while the chain is unreachable)."""

    def __init__(
        self, chain: ChainPort, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.chain, self.ttl_s, self.clock = chain, ttl_s, clock
        self._metagraph: Metagraph | None = None
        self._read_at = float("-inf")

    async def __call__(self, hotkey: str) -> bool:
        if self.clock() - self._read_at >= self.ttl_s:
            try:
                self._metagraph = await self.chain.metagraph()
                self._read_at = self.clock()
            except ChainError as exc:
                log.warning("metagraph unavailable for joins", extra={"why": str(exc)})
        return self._metagraph is not None and self._metagraph.by_hotkey(hotkey) is not None


def network_settings(settings: GatewayNetworkSettings) -> NetworkSettings:
    return NetworkSettings(
        pool=settings.pool,
        validity_s=settings.validity_s,
        skew_s=settings.skew_s,
        keepalive_s=settings.keepalive_s,
    )


@dataclass
class PrivateNetworks:
    """The gateway's side of private networks around `TenantNetworks` (the lease desk's
    ``networks`` hooks: `started`, `ended`)."""

    nets: TenantNetworks
    pool: Supply
    settings: GatewayNetworkSettings
    #: Where miners send joins: the gateway's public URL + ``JOIN_PATH``.
    join_url: str
    #: lease id -> the id its miner knows (LeaseDesk.anonymous_id).
    wire_id: Callable[[str], str]
    _pushes: set[asyncio.Task[None]] = field(default_factory=set)

    async def started(self, lease: LeaseRecord) -> None:
        """Attach a stored private lease: its miner has its worker bring up the link and join."""
        if LeaseSpec.model_validate_json(lease.spec_json).network != "private":
            return
        s = self.settings
        attach = LeaseNetwork(
            tenant_id=lease.tenant_id,
            join_url=self.join_url,
            validity_s=s.validity_s,
            skew_s=s.skew_s,
            keepalive_s=s.keepalive_s,
        )
        try:
            client = await self._client(lease.miner_hotkey)
            await client.attach_network(self.wire_id(lease.id), attach)
        except MinerCallError as exc:
            # The lease stands (its worker is reserved and billed); it has no network.
            log.warning("private network not attached", extra={"lease": lease.id, "why": exc})

    async def ended(self, lease: LeaseRecord) -> None:
        """The lease's member leaves; the others are told at once."""
        await self.push(await self.nets.leave(lease.id))

    async def join(self, headers: Mapping[str, str], body: bytes) -> Response:
        try:
            outcome = await self.nets.join(headers, body)
        except JoinRejected as exc:
            return JSONResponse({"error": exc.reason, "detail": str(exc)}, status_code=403)
        self._push_later(outcome.updates)
        return Response(outcome.own.message.model_dump_json(), media_type="application/json")

    def _push_later(self, deliveries: list[Delivery]) -> None:
        # The joiner's answer does not wait for the other members' miners.
        if deliveries:
            task = asyncio.create_task(self.push(deliveries), name="wg-push")
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)

    async def push(self, deliveries: list[Delivery]) -> None:
        """Each peer set to its member's miner, concurrently; a miner that cannot be reached
        keeps its member's older set (it still names only members that were admitted)."""
        await asyncio.gather(*(self._push_one(d) for d in deliveries))

    async def _push_one(self, delivery: Delivery) -> None:
        try:
            client = await self._client(delivery.miner_hotkey)
            await client.push_peer_set(delivery.lease_id, delivery.message)
        except MinerCallError as exc:
            log.warning(
                "peer set not delivered",
                extra={"miner": delivery.miner_hotkey, "lease": delivery.lease_id, "why": exc},
            )

    async def _client(self, hotkey: str) -> MinerClient:
        client = await self.pool.client(hotkey)
        if not isinstance(client, MinerClient):
            raise MinerCallError("this miner cannot carry network messages", reason="unsupported")
        return client

    async def sweep(self) -> int:
        """Members whose lease is no longer active leave (the hook missed them); how many."""
        async with self.nets.store.session() as s:
            stale = list(
                await s.scalars(
                    sa.select(TenantNetworkMember.lease_id)
                    .join(Lease, Lease.id == TenantNetworkMember.lease_id)
                    .where(TenantNetworkMember.left_at.is_(None), Lease.state != LeaseState.ACTIVE)
                    .limit(_SWEEP_BATCH)
                )
            )
        for lease_id in stale:
            await self.push(await self.nets.leave(lease_id))
        return len(stale)

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.settings.sweep_interval_s)
                try:
                    await self.sweep()
                except Exception:  # the next sweep tries again
                    log.exception("network sweep failed")
        finally:
            await self.close()

    async def flush(self) -> None:
        """Wait for the pushes in flight (each bounded by the miner client's timeout)."""
        await asyncio.gather(*list(self._pushes), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self._pushes):
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*self._pushes, return_exceptions=True)


def private_networks(
    settings: GatewaySettings,
    *,
    store: Store,
    wallet: WalletLike,
    gateway_hotkey: str,
    pool: Supply,
    chain: ChainPort,
    wire_id: Callable[[str], str],
) -> PrivateNetworks | None:
    """The gateway's private networks as its settings say (None when they are off)."""
    s = settings.networks
    if not s.enabled:
        return None
    scheme = "https" if settings.tls_cert is not None else "http"
    base = (s.public_url or f"{scheme}://{settings.host}:{settings.port}").rstrip("/")
    nets = TenantNetworks(
        store,
        gateway=wallet,
        gateway_hotkey=gateway_hotkey,
        settings=network_settings(s),
        wire_id=wire_id,
        authorize=RegisteredMiners(chain, settings.metagraph_refresh_s),
    )
    return PrivateNetworks(nets, pool, s, join_url=base + JOIN_PATH, wire_id=wire_id)


def networks_router(networks: PrivateNetworks) -> APIRouter:
    # Node to node (miners sign, btauth/1), not part of the customer API.
    router = APIRouter(include_in_schema=False)

    @router.post(JOIN_PATH)
    async def join(request: Request) -> Response:
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_JOIN_BYTES:
                break  # refused (and recorded) as too large without reading the rest
        return await networks.join(request.headers, bytes(body))

    return router


def mount_networks(app: FastAPI, networks: PrivateNetworks) -> None:
    app.include_router(networks_router(networks))
