"""A gateway wired to a running test network: its miner pool, an optional lease desk, and its
dispatch loop. The end-to-end tests differ only in settings and in what they add around it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

from byteleap.chain.local.client import LocalChain
from byteleap.config import GatewaySettings
from byteleap.gateway.core import GatewayService
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.miners import MinerPool
from byteleap.store import (
    ChallengeRecord,
    ChallengeStatus,
    Store,
    bulk_insert_challenges,
    upsert_miner,
    upsert_workers,
)

RECEIPT_SECRET = b"0123456789abcdef0123"


def network_settings(network: Any, **overrides: Any) -> GatewaySettings:
    """Settings that reach ``network``'s chain and refresh quickly enough for a test."""
    values: dict[str, Any] = {"dispatch_interval_s": 0.2, "metagraph_refresh_s": 1.0}
    values.update(overrides)
    return GatewaySettings(chain={"url": network.chain_url}, **values)


@asynccontextmanager
async def miner_pool(network: Any, settings: GatewaySettings) -> AsyncIterator[MinerPool]:
    chain = LocalChain(network.chain_url, timeout_s=5)
    pool = MinerPool(network.validator, chain, settings)
    try:
        yield pool
    finally:
        await pool.close()
        await chain.close()


def lease_desk(
    network: Any, store: Store, pool: MinerPool, settings: GatewaySettings, bill_period_s: float
) -> LeaseDesk:
    return LeaseDesk(
        store, pool, settings, hotkey=network.validator.hotkey, netuid=1,
        secret=RECEIPT_SECRET, bill_period_s=bill_period_s,
    )  # fmt: skip


@asynccontextmanager
async def dispatching(service: GatewayService) -> AsyncIterator[GatewayService]:
    """``service`` with its dispatch loop running; the loop is cancelled on the way out."""
    loop = asyncio.create_task(service.run())
    try:
        yield service
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)


async def record_pass(store: Store, miner_hotkey: str, worker_id: str, *, at: int) -> None:
    """A challenge the validator saw the worker pass at ``at``: lease revenue counts only for
    workers a recent pass vouches for (docs/scoring.md), and no validator rounds run here."""
    async with store.session() as s:
        miner = await upsert_miner(s, miner_hotkey, uid=None, axon=None, at=at)
        wid = (await upsert_workers(s, miner.id, [worker_id], at=at))[worker_id]
        passed = ChallengeRecord(
            id=f"pass-{wid}-{at}", worker_id=wid, miner_id=miner.id, profile="cpu-f64", n=512,
            seed="00" * 32, status=ChallengeStatus.PASSED, failure_reason=None, claimed_gpu=None,
            root=None, issued_at=at, deadline_at=at + 60, finished_at=at + 1, rtt_s=None,
            commit_s=None, compute_s=None, throughput=1e9,
        )  # fmt: skip
        await bulk_insert_challenges(s, [passed])


async def until(what: str, check: Callable[[], Awaitable[bool]], timeout_s: float = 60) -> None:
    """Poll ``check`` until it holds; fail saying ``what`` did not happen in ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        await asyncio.sleep(0.1)
