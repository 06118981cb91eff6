"""`byteleap gateway run`: the customer API and the dispatch loop in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from byteleap import metrics
from byteleap.chain import open_chain
from byteleap.config import GatewaySettings
from byteleap.gateway.billing import Billing
from byteleap.gateway.core import GatewayService
from byteleap.gateway.grpc_api import serve_grpc
from byteleap.gateway.http_server import server_config
from byteleap.gateway.leadership import Leadership, lock_sqlite_store
from byteleap.gateway.leasing import LeaseDesk, shared_lease_secret
from byteleap.gateway.listening import check_listening, grpc_credentials, is_loopback, uvicorn_tls
from byteleap.gateway.liveness import LeaseWatch
from byteleap.gateway.miners import MinerPool, Supply
from byteleap.gateway.network import NetworkView
from byteleap.gateway.networks_api import mount_networks, private_networks
from byteleap.gateway.output_validator import OutputValidator
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.rest_billing import mount_billing
from byteleap.gateway.rest_services import mount_services
from byteleap.gateway.service_desk import ServiceDesk
from byteleap.gateway.trust import VerifiedSupply
from byteleap.keys import load_wallet
from byteleap.store import open_store, upgrade

log = logging.getLogger(__name__)


async def run_gateway(settings: GatewaySettings) -> None:
    check_listening(settings)  # before anything opens: a refusal leaves nothing behind
    if settings.tls_cert is None and not is_loopback(settings.host):
        log.warning(
            "serving plain HTTP and gRPC on a public address (insecure_public): TLS must end "
            "in front of this gateway", extra={"host": settings.host},
        )  # fmt: skip
    wallet = load_wallet(settings.wallet.name, settings.wallet.hotkey, path=settings.wallet.path)
    await upgrade(settings.store.url)
    if settings.metrics_port is not None:
        metrics.serve_metrics(settings.metrics_port)  # 127.0.0.1: unauthenticated
    store = await open_store(settings.store.url)
    # SQLite: this process alone (a second gateway is refused); PostgreSQL: any number of
    # replicas, one of which runs the passes at a time.
    sqlite_lock = lock_sqlite_store(store)
    leadership = None if sqlite_lock is not None else Leadership(store, ttl_s=settings.leader_ttl_s)
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
        secret=await shared_lease_secret(store, settings.home / "gateway"),
        bill_period_s=settings.bill_period_s,
    )
    desk.liveness = watch = LeaseWatch(store, pool, settings, desk)
    desk.networks = networks = private_networks(
        settings, store=store, wallet=wallet, gateway_hotkey=wallet.hotkey.ss58_address,
        pool=pool, chain=chain, wire_id=desk.anonymous_id,
    )  # fmt: skip
    validator = OutputValidator(store, pool, settings)
    service = GatewayService(
        store, pool, settings, leasing=desk, validator=validator, watch=watch,
        leadership=leadership,
    )  # fmt: skip
    network = NetworkView(store, metagraph=chain.metagraph, params=settings.scoring)
    http = settings.http
    app = create_rest_app(
        service,
        max_body_bytes=http.max_body_bytes,
        body_timeout_s=http.body_timeout_s,
        key_recheck_s=http.key_recheck_s,
        network=network,
    )
    mount_billing(app, Billing(store, pool, settings))
    server = uvicorn.Server(
        server_config(app, settings.host, settings.port, http, **uvicorn_tls(settings))
    )
    dispatcher = asyncio.create_task(service.run(), name="dispatch")
    services = ServiceDesk(store, pool, settings, leasing=desk)
    if leadership is not None:
        services.loop.leading = lambda: leadership.held
        services.loop.gateway_name = leadership.holder
    mount_services(server.config.app, services)
    service_loop = asyncio.create_task(services.run(), name="services")
    network_loop = None
    if networks is not None:
        mount_networks(server.config.app, networks)
        network_loop = asyncio.create_task(networks.run(), name="private-networks")
    grpc_server = None
    if settings.grpc_port:
        grpc_server = await serve_grpc(
            service, settings.host, settings.grpc_port, services=services,
            max_message_bytes=http.max_body_bytes, key_recheck_s=http.key_recheck_s,
            credentials=grpc_credentials(settings),
        )  # fmt: skip
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
        if leadership is not None:
            await leadership.resign()  # the next replica takes over now, not after the ttl
        if sqlite_lock is not None:
            sqlite_lock.close()
        await pool.close()
        await chain.close()
        await store.close()
