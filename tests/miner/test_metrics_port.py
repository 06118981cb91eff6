"""The miner's Prometheus registry is not on its public TLS port: it is unauthenticated, so it is
served on ``metrics_port`` at 127.0.0.1 only (as the validator's)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from byteleap.config import MinerSettings
from byteleap.miner.ledger import MinerLedger
from byteleap.miner.node import MinerNode
from byteleap.miner.service import MinerApp, create_app


@pytest.fixture
def node(tmp_path: Path) -> Iterator[MinerNode]:
    ledger = MinerLedger(tmp_path / "miner.db")
    yield MinerNode("5Miner", "ab" * 32, ledger, heartbeat_s=5.0, missed_heartbeats=3)
    ledger.close()


@pytest.mark.adversarial
async def test_the_public_port_serves_no_metrics(node: MinerNode) -> None:
    app = create_app(MinerApp(node=node, wallet=cast(Any, None), verifier=cast(Any, None)))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://miner") as http:
        for path in ("/metrics", "/metrics/"):
            response = await http.get(path)
            assert response.status_code == 404
            assert "byteleap_miner" not in response.text


def test_metrics_port_is_a_setting_off_by_default() -> None:
    assert MinerSettings().metrics_port is None
    assert MinerSettings(metrics_port=9464).metrics_port == 9464
