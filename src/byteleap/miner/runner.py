"""`byteleap miner run`: register, publish the axon with the TLS key, serve."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from byteleap.chain import open_chain
from byteleap.config import MinerSettings
from byteleap.keys import load_wallet
from byteleap.metrics import serve_metrics
from byteleap.miner.jobs import JobBook
from byteleap.miner.ledger import MinerLedger
from byteleap.miner.node import MinerNode
from byteleap.miner.permits import PermitCache
from byteleap.miner.service import MinerApp, create_app
from byteleap.net.auth import RequestVerifier
from byteleap.net.messages import MAX_WS_MESSAGE_BYTES
from byteleap.net.ratelimit import RateLimiter
from byteleap.net.tls import load_or_create_identity

log = logging.getLogger(__name__)

LEDGER_FILE = "miner.db"
JOB_LOGS_DIR = "job-logs"  # jobs' logs, kept while the job is (emptied at start)


def ledger_for(settings: MinerSettings) -> MinerLedger:
    return MinerLedger(settings.state_dir / LEDGER_FILE)


async def run_miner(settings: MinerSettings) -> None:
    wallet = load_wallet(settings.wallet.name, settings.wallet.hotkey, path=settings.wallet.path)
    identity = load_or_create_identity(settings.state_dir)
    chain = open_chain(settings.chain)
    uid = await chain.register(wallet)
    hotkey = wallet.hotkey.ss58_address
    node = MinerNode(
        hotkey=hotkey,
        tls_public_key=identity.public_key.hex(),
        ledger=ledger_for(settings),
        heartbeat_s=settings.heartbeat_s,
        missed_heartbeats=settings.missed_heartbeats,
        jobs=JobBook(
            max_job_log_bytes=settings.job_logs.max_job_bytes,
            max_log_bytes=settings.job_logs.max_total_bytes,
            logs_dir=settings.state_dir / JOB_LOGS_DIR,
        ),
    )
    verifier = RequestVerifier(
        self_hotkey=hotkey,
        authorize=PermitCache(chain, settings.permit_cache_s),
        limiter=RateLimiter(rate_per_s=settings.rate_per_s, burst=settings.rate_burst),
    )
    app = create_app(MinerApp(node=node, wallet=wallet, verifier=verifier))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=str(identity.cert_path),
        ssl_keyfile=str(identity.key_path),
        ws_max_size=2 * MAX_WS_MESSAGE_BYTES,
        # A worker's link carries its jobs' logs in chunks of up to 1 MiB: uvicorn's default
        # of 32 queued messages let a fast job park ~45 MB of them in the miner; a few keep
        # the rest in the worker's socket, which then waits (TCP backpressure).
        ws_max_queue=4,
        log_level="warning",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    if settings.metrics_port is not None:
        serve_metrics(settings.metrics_port)  # 127.0.0.1: unauthenticated, so never public
    serving = asyncio.create_task(server.serve(), name="miner-server")
    try:
        # Publish the axon only once it answers: a validator reading the metagraph
        # must never find an address that refuses connections.
        while not server.started:
            if serving.done():
                await serving  # it failed to start: raise why
            await asyncio.sleep(0.05)
        ip = settings.external_ip or settings.host
        await chain.serve_axon(wallet, ip, settings.port, certificate=identity.public_key)
        log.info("miner serving", extra={"uid": uid, "axon": f"{ip}:{settings.port}"})
        await serving
    finally:
        node.ledger.close()
        await chain.close()
