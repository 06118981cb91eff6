"""`byteleap gateway run`: the customer API and the dispatch loop in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from byteleap.chain import open_chain
from byteleap.cloud.gateway.grpc_api import serve_grpc
from byteleap.cloud.gateway.leasing import LeaseDesk, lease_secret
from byteleap.cloud.gateway.liveness import LeaseWatch
from byteleap.cloud.gateway.miners import MinerPool, Supply
from byteleap.cloud.gateway.network import NetworkView
from byteleap.cloud.gateway.networks_api import mount_networks, private_networks
from byteleap.cloud.gateway.rest import create_rest_app
from byteleap.cloud.gateway.rest_services import mount_services
from byteleap.cloud.gateway.service import GatewayService
from byteleap.cloud.gateway.services import ServiceDesk
from byteleap.cloud.gateway.trust import VerifiedSupply
from byteleap.cloud.gateway.validation import OutputValidator
from byteleap.config import GatewaySettings
from byteleap.keys import load_wallet
from byteleap.store import open_store, upgrade

log = logging.getLogger(__name__)


async def run_gateway(settings: GatewaySettings) -> None:
    wallet = load_wallet(settings.wallet.name, settings.wallet.hotkey, path=settings.wallet.path)
    await upgrade(settings.store.url)
    store = await open_store(settings.store.url)
    chain = open_chain(settings.chain)
    pool: Supply = MinerPool(wallet, chain, settings)
    if settings.verified_window_s is not None:
        pool = VerifiedSupply(pool, store, settings.verified_window_s)
    desk = LeaseDesk(
        store,
        pool,
        settings,
        hotkey=wallet.hotkey,
        netuid=settings.chain.netuid,
        secret=lease_secret(settings.home / "gateway"),
        bill_period_s=settings.bill_period_s,
    )
    desk.liveness = watch = LeaseWatch(store, pool, settings, desk)
    desk.networks = networks = private_networks(
        settings, store=store, wallet=wallet, gateway_hotkey=wallet.hotkey.ss58_address,
        pool=pool, chain=chain, wire_id=desk.anonymous_id,
    )  # fmt: skip
    validator = OutputValidator(store, pool, settings)
    service = GatewayService(store, pool, settings, leasing=desk, validator=validator, watch=watch)
    network = NetworkView(store, metagraph=chain.metagraph, params=settings.scoring)
    server = uvicorn.Server(
        uvicorn.Config(
            create_rest_app(service, network=network),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            timeout_graceful_shutdown=5,
        )
    )
    dispatcher = asyncio.create_task(service.run(), name="dispatch")
    services = ServiceDesk(store, pool, settings, leasing=desk)
    mount_services(server.config.app, services)
    service_loop = asyncio.create_task(services.run(), name="services")
    network_loop = None
    if networks is not None:
        mount_networks(server.config.app, networks)
        network_loop = asyncio.create_task(networks.run(), name="private-networks")
    grpc_server = (
        await serve_grpc(service, settings.host, settings.grpc_port, services=services)
        if settings.grpc_port
        else None
    )
    try:
        await server.serve()
    finally:
        if grpc_server is not None:
            await grpc_server.stop(5)
        if network_loop is not None:
            network_loop.cancel()
            await asyncio.gather(network_loop, return_exceptions=True)
        service_loop.cancel()
        await asyncio.gather(service_loop, return_exceptions=True)
        await services.close()
        dispatcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await dispatcher
        await pool.close()
        await chain.close()
        await store.close()
