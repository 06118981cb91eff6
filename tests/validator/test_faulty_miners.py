"""Miners that answer garbage or never answer cost only themselves, never the round."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, Response

from byteleap.chain.local.client import LocalChain
from byteleap.keys import ensure_wallet
from byteleap.net.tls import TlsIdentity, load_or_create_identity
from byteleap.store import ChallengeStatus, Store
from byteleap.validator.rounds import RoundParams, RoundRunner

pytestmark = [pytest.mark.slow, pytest.mark.adversarial]


def faulty_app(kind: str) -> FastAPI:
    app = FastAPI()

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def anything(path: str) -> Response:
        if kind == "hang":
            await asyncio.sleep(3600)
        return Response(b'{"type": "worker_list", "workers": [{"garbage": tru', status_code=200)

    return app


class FaultyMiner:
    def __init__(self, kind: str, identity: TlsIdentity, port: int) -> None:
        self.port = port
        config = uvicorn.Config(
            faulty_app(kind),
            host="127.0.0.1",
            port=port,
            ssl_certfile=str(identity.cert_path),
            ssl_keyfile=str(identity.key_path),
            log_level="error",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()))

    def __enter__(self) -> FaultyMiner:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.server.force_exit = True
        self.thread.join(10)


@pytest.fixture
def faulty_miners(network: Any, tmp_path: Path, free_port: Any) -> Iterator[dict[str, str]]:
    """A garbage-speaking and a silent miner, registered with axons and TLS keys."""
    hotkeys: dict[str, str] = {}
    servers = []
    for kind in ("garbage", "hang"):
        wallet = ensure_wallet(f"faulty-{kind}", path=Path(network.validator.path))
        identity = load_or_create_identity(tmp_path / kind)
        server = FaultyMiner(kind, identity, free_port())
        servers.append(server.__enter__())

        async def publish(
            wallet: Any = wallet, server: FaultyMiner = server, identity: TlsIdentity = identity
        ) -> None:
            async with LocalChain(network.chain_url, timeout_s=5) as chain:
                await chain.register(wallet)
                await chain.serve_axon(wallet, "127.0.0.1", server.port, identity.public_key)

        asyncio.run(publish())
        hotkeys[kind] = wallet.hotkey.ss58_address
    try:
        yield hotkeys
    finally:
        for server in servers:
            server.__exit__()


async def test_garbage_and_silence_cost_only_their_miner(
    network: Any, workers: dict[str, str], faulty_miners: dict[str, str], store: Store
) -> None:
    params = RoundParams(n=128, ttl_s=6.0, call_timeout_s=2.0)
    async with LocalChain(network.chain_url, timeout_s=5) as chain:
        report = await RoundRunner(network.validator, chain, store, params).run_round()
    # The silent miner is given up on at its own timeout; the round is not held up.
    assert report.unreachable[faulty_miners["hang"]] == "timeout"
    assert report.unreachable[faulty_miners["garbage"]] in {"malformed_auth", "malformed"}
    passed = {o.worker_id for o in report.outcomes if o.status is ChallengeStatus.PASSED}
    assert {workers["w1"], workers["w2"]} <= passed
