"""Only verified workers get customer work.

A worker is offered to customers while, in the validator's scoring window, it
has passed at least one challenge and given no verified wrong answer. The
gateway is hosted by the validator and reads its store, so a miner caught
cheating at challenges cannot collect lease revenue (70 % of its score) by
renting out the same machines.

What a verified worker is sold as comes from the same records: its verified
throughput is the median of its passes in the window, and its GPUs are sold as
the model that throughput supports (``supply_checks.as_measured``), never as
the bare claim.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from byteleap.gateway.miners import MinerApi, Supply
from byteleap.gateway.scheduler import WorkerKey, WorkerOffer
from byteleap.gateway.supply_checks import as_measured
from byteleap.protocol.gpu_models import verified_flops
from byteleap.store import ChallengeStatus, Store, challenge_summaries, list_miners, list_workers


@dataclass
class VerifiedSupply:
    """A `Supply` that offers only verified workers, as what they measured (re-read at most
    every ``ttl_s``)."""

    inner: Supply
    store: Store
    window_s: float
    ttl_s: float = 10.0
    clock: Callable[[], float] = time.time
    _verified: dict[WorkerKey, float | None] = field(default_factory=dict, init=False)
    _read_at: float = field(default=float("-inf"), init=False)

    async def verified(self) -> dict[WorkerKey, float | None]:
        """Each verified worker and its verified throughput (None: no usable figure)."""
        now = self.clock()
        if now - self._read_at < self.ttl_s:
            return self._verified
        async with self.store.session() as s:
            rows = await challenge_summaries(s, since=int(now - self.window_s), until=int(now) + 1)
            workers = {w.id: w for w in await list_workers(s)}
            miners = {m.id: m.hotkey for m in await list_miners(s)}
        good: dict[WorkerKey, float | None] = {}
        for row in rows:
            worker = workers.get(row.worker_id)
            passed = row.counts.get(ChallengeStatus.PASSED, 0)
            cheated = row.counts.get(ChallengeStatus.FAILED, 0)
            if worker is not None and passed > 0 and cheated == 0:
                good[(miners[worker.miner_id], worker.worker_key)] = verified_flops(row.throughputs)
        self._verified, self._read_at = good, now
        return self._verified

    async def offers(self) -> list[WorkerOffer]:
        verified = await self.verified()
        return [
            as_measured(o, verified[o.key]) for o in await self.inner.offers() if o.key in verified
        ]

    async def client(self, hotkey: str) -> MinerApi:
        return await self.inner.client(hotkey)

    async def close(self) -> None:
        await self.inner.close()
