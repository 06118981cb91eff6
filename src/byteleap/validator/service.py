"""The validator process: challenge rounds and the weight loop, both resumable from the store.

On start it closes challenges a crash left open (as abandoned: nobody's fault),
then runs two loops. A store outage pauses both with one clear log line and
they resume when it returns; weights are only set from a complete computation.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from bittensor.signing import WalletLike, resolve_signer

from byteleap import __version__, metrics
from byteleap.chain.port import ChainError, ChainPort
from byteleap.config import ValidatorSettings
from byteleap.proof import Profile
from byteleap.scoring import ScoringParams
from byteleap.store import (
    Store,
    StoreError,
    abandon_open_challenges,
    mark_weights_submitted,
    record_weights,
)
from byteleap.store.retention import prune_store
from byteleap.validator.rounds import RoundParams, RoundReport, RoundRunner
from byteleap.validator.scores import ScoreResult, compute_scores

log = logging.getLogger(__name__)


def version_key() -> int:
    """The weights version key: major*1000 + minor*10 + patch, from the package version."""
    major, minor, patch = (int(p) for p in __version__.split(".")[:3])
    return major * 1000 + minor * 10 + patch


def round_params(settings: ValidatorSettings) -> RoundParams:
    return RoundParams(
        n=settings.challenge_n,
        profile=Profile(settings.challenge_profile),
        gpu_target_s=settings.gpu_challenge_target_s,
        gpu_network_allowance_s=settings.gpu_network_allowance_s,
        gpu_profile=Profile(settings.gpu_challenge_profile),
        ttl_s=settings.challenge_ttl_s,
        max_workers_per_miner=settings.max_workers_per_miner,
        reveal_budget_s=settings.reveal_budget_s,
        reveal_s_per_challenge=settings.reveal_s_per_challenge,
        rows=settings.reveal_rows,
        cols=settings.reveal_cols,
    )


def scoring_params(settings: ValidatorSettings) -> ScoringParams:
    return settings.scoring.model_copy(update={"round_interval_s": settings.round_interval_s})


@dataclass
class Validator:
    settings: ValidatorSettings
    wallet: WalletLike
    chain: ChainPort
    store: Store
    clock: Callable[[], float] = time.time
    last_set_block: int | None = None
    reports: list[RoundReport] = field(default_factory=list)

    @property
    def hotkey(self) -> str:
        return resolve_signer(self.wallet, role="hotkey").ss58_address

    async def resume(self) -> None:
        async with self.store.session() as s:
            abandoned = await abandon_open_challenges(s, at=int(self.clock()))
        if abandoned:
            log.warning("closed challenges left open by a restart", extra={"count": abandoned})

    async def run(self) -> None:
        while True:
            try:
                await self.resume()
                break
            except StoreError as exc:
                log.error("store unavailable; waiting for it", extra={"why": str(exc)})
                await asyncio.sleep(self.settings.store_retry_s)
        await asyncio.gather(self.rounds_forever(), self.weights_forever())

    async def rounds_forever(self) -> None:
        runner = RoundRunner(self.wallet, self.chain, self.store, round_params(self.settings))
        while True:
            started = time.monotonic()
            try:
                report = await runner.run_round()
                self.reports = [*self.reports[-99:], report]
                await self.prune()
            except StoreError as exc:
                log.error("store unavailable; round paused", extra={"why": str(exc)})
                await asyncio.sleep(self.settings.store_retry_s)
                continue
            except ChainError as exc:
                log.error("chain unavailable; round skipped", extra={"why": str(exc)})
            elapsed = time.monotonic() - started
            await asyncio.sleep(max(0.0, self.settings.round_interval_s - elapsed))

    async def prune(self) -> int:
        """Delete challenges past the retention (once a round: each run removes about one
        round's worth); how many went."""
        return await prune_store(
            self.store,
            now=self.clock(),
            retention_s=self.settings.challenge_retention_s,
            lookback_s=scoring_params(self.settings).lease_challenge_window_min * 60.0,
        )

    async def score(self) -> ScoreResult:
        metagraph = await self.chain.metagraph()
        return await compute_scores(
            self.store,
            metagraph,
            now=self.clock(),
            params=scoring_params(self.settings),
            exclude={self.hotkey},
        )

    async def set_weights_once(self) -> bool:
        """Compute from the store and set on chain when due; True when weights were set."""
        block = await self.chain.current_block()
        due = (
            self.last_set_block is None
            or block - self.last_set_block >= self.settings.weights_every_blocks
        )
        if not due:
            return False
        result = await self.score()
        if not result.weights:
            log.info("no miner earned anything yet; weights left as they are")
            return False
        key = version_key()
        async with self.store.session() as s:
            set_id = await record_weights(
                s,
                netuid=self.settings.chain.netuid,
                version_key=key,
                weights=result.weights,
                computed_at=int(self.clock()),
                block=block,
            )
        uids, weights = list(result.weights), list(result.weights.values())
        try:
            await self.chain.set_weights(self.wallet, uids, weights, key)
            accepted, message = True, None
        except ChainError as exc:
            accepted, message = False, f"{exc.reason}: {exc}"
            log.error("set_weights refused", extra={"why": message})
        metrics.WEIGHTS_SET.labels("accepted" if accepted else "refused").inc()
        async with self.store.session() as s:
            await mark_weights_submitted(s, set_id, block=block, accepted=accepted, message=message)
        if accepted:
            self.last_set_block = block
            log.info("weights set", extra={"block": block, "uids": len(uids)})
        return accepted

    async def weights_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.weights_interval_s)
            try:
                await self.set_weights_once()
            except StoreError as exc:
                log.error("store unavailable; weights paused", extra={"why": str(exc)})
            except ChainError as exc:
                log.error("chain unavailable; weights skipped", extra={"why": str(exc)})
