"""Who may call a miner: registered neurons holding a validator permit, per the chain."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from byteleap.chain.port import ChainError, ChainPort, Metagraph

log = logging.getLogger(__name__)


class PermitCache:
    """Answers "does this hotkey hold a validator permit?" from a metagraph at most
    ``ttl_s`` old; keeps the last good one while the chain is unreachable."""

    def __init__(
        self, chain: ChainPort, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.chain = chain
        self.ttl_s = ttl_s
        self.clock = clock
        self._metagraph: Metagraph | None = None
        self._fetched_at = float("-inf")

    async def metagraph(self) -> Metagraph | None:
        if self.clock() - self._fetched_at >= self.ttl_s:
            try:
                self._metagraph = await self.chain.metagraph()
                self._fetched_at = self.clock()
            except ChainError as exc:
                log.warning("metagraph refresh failed", extra={"why": str(exc)})
        return self._metagraph

    async def __call__(self, hotkey: str) -> bool:
        metagraph = await self.metagraph()
        neuron = metagraph.by_hotkey(hotkey) if metagraph is not None else None
        return neuron is not None and neuron.validator_permit
