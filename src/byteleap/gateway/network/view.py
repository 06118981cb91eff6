"""`NetworkView`: the validator's store (and the chain) read into the public network models.

Each answer is cached for ``cache_s`` so a dashboard left open, or many of them, costs the
store one read per endpoint per period; score history, which reruns scoring once per point,
is the expensive one and is what the cache is for.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, TypeVar

from byteleap.chain.port import ChainError, Metagraph, NeuronInfo
from byteleap.gateway.network import summary
from byteleap.gateway.network.models import (
    ChainInfo,
    ChallengeHistory,
    ChallengeView,
    GpuView,
    MinerList,
    MinerScorePoint,
    MinerSummary,
    NetworkOverview,
    ScoreHistory,
    ScoreSnapshot,
    WeightHistory,
    WeightSetView,
    WorkerSummary,
)
from byteleap.protocol.gpu_models import gpu_reading
from byteleap.protocol.states import ChallengeStatus
from byteleap.scoring import ScoringParams
from byteleap.store import (
    MinerRecord,
    Store,
    WorkerRecord,
    bucket_of,
    challenge_summaries,
    latest_weights,
    list_miners,
    list_workers,
    online_buckets,
    weights_history,
)
from byteleap.store.network import (
    WorkerChallengeCounts,
    challenge_counts,
    challenge_timeline,
    job_states,
    lease_states,
    recent_challenges,
    service_states,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
MetagraphSource = Callable[[], Awaitable[Metagraph]]

MAX_POINTS = 96
MAX_RECENT = 500
MAX_WEIGHT_SETS = 200
MAX_HOURS = 24 * 8


class NetworkView:
    def __init__(
        self,
        store: Store,
        *,
        metagraph: MetagraphSource | None = None,
        params: ScoringParams | None = None,
        availability_window_s: float = 24 * 3600.0,
        cache_s: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.metagraph_source = metagraph
        self.params = params or ScoringParams()
        self.availability_window_s = availability_window_s
        self.cache_s = cache_s
        self.clock = clock
        self._cache: dict[Hashable, tuple[float, Any]] = {}
        self._locks: dict[Hashable, asyncio.Lock] = {}

    async def _cached(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        async with self._locks.setdefault(key, asyncio.Lock()):
            hit = self._cache.get(key)
            if hit is not None and self.clock() < hit[0]:
                return hit[1]  # type: ignore[no-any-return]
            value = await make()
            self._cache[key] = (self.clock() + self.cache_s, value)
            return value

    async def _metagraph(self) -> Metagraph | None:
        if self.metagraph_source is None:
            return None
        try:
            return await self._cached(("metagraph",), self.metagraph_source)
        except ChainError as exc:
            log.warning("network view: chain unavailable", extra={"why": str(exc)})
            return None

    # -- overview --------------------------------------------------------------------------

    async def overview(self) -> NetworkOverview:
        return await self._cached(("overview",), self._overview)

    async def _overview(self) -> NetworkOverview:
        now = self.clock()
        metagraph = await self._metagraph()
        async with self.store.session() as s:
            counts = await challenge_counts(
                s, since=int(now - self.params.window_s), until=int(now) + 1
            )
            workers = await list_workers(s)
            miners = await list_miners(s)
            shares, online_now = await self._availability(s, workers, now)
            jobs = await job_states(s)
            leases = await lease_states(s)
            services = await service_states(s)
        gpus = Counter(g.model for w in workers for g in w.hardware.gpus)
        return NetworkOverview(
            generated_at=now,
            chain=_chain_info(metagraph),
            miners=len(miners),
            workers=len(workers),
            workers_online=len(online_now),
            workers_by_state=dict(Counter(str(w.state) for w in workers)),
            gpus=sum(gpus.values()),
            gpus_by_model=dict(gpus),
            challenges=summary.challenge_totals(
                (c.counts for c in counts), window_s=self.params.window_s
            ),
            availability=summary.mean(shares.values()),
            availability_window_s=self.availability_window_s,
            jobs=jobs,
            leases=leases,
            services=services,
        )

    async def _availability(
        self, s: Any, workers: list[WorkerRecord], now: float
    ) -> tuple[dict[int, float | None], set[int]]:
        """Per worker, its share of buckets online since the window start (or since it was
        first seen), and the workers seen online in this bucket or the one before."""
        now_bucket = bucket_of(now)
        since_bucket = bucket_of(now - self.availability_window_s) + 1
        online = await online_buckets(s, since_bucket, now_bucket + 1)
        recent = await online_buckets(s, now_bucket - 1, now_bucket + 1)
        shares = {
            w.id: summary.availability_share(
                online.get(w.id, 0),
                first_seen_bucket=bucket_of(w.first_seen_at),
                since_bucket=since_bucket,
                now_bucket=now_bucket,
            )
            for w in workers
        }
        return shares, set(recent)

    # -- miners ----------------------------------------------------------------------------

    async def miners(self) -> MinerList:
        return await self._cached(("miners",), self._miners)

    async def _miners(self) -> MinerList:
        now = self.clock()
        since, until = int(now - self.params.window_s), int(now) + 1
        async with self.store.session() as s:
            counts = await challenge_counts(s, since=since, until=until)
            summaries = await challenge_summaries(s, since=since, until=until)
            workers = await list_workers(s)
            miners = await list_miners(s)
            shares, online_now = await self._availability(s, workers, now)
            newest = await latest_weights(s, accepted_only=True)
        by_worker = {c.worker_id: c for c in counts}
        passes = {r.worker_id: r.throughputs for r in summaries}
        weights = newest.weights if newest is not None else None
        return MinerList(
            generated_at=now,
            window_s=self.params.window_s,
            miners=[
                _miner_summary(
                    m,
                    [w for w in workers if w.miner_id == m.id],
                    by_worker,
                    passes,
                    shares,
                    online_now,
                    None if weights is None or m.uid is None else weights.get(m.uid, 0.0),
                )
                for m in miners
            ],
        )

    # -- challenges ------------------------------------------------------------------------

    async def challenges(self, *, hours: float, points: int, limit: int) -> ChallengeHistory:
        return await self._cached(
            ("challenges", hours, points, limit), lambda: self._challenges(hours, points, limit)
        )

    async def _challenges(self, hours: float, points: int, limit: int) -> ChallengeHistory:
        now = self.clock()
        step_s = max(1, int(hours * 3600 / points))
        since = int(now) + 1 - step_s * points
        async with self.store.session() as s:
            cells = await challenge_timeline(s, since=since, until=int(now) + 1, step_s=step_s)
            recent = await recent_challenges(s, limit=limit)
        return ChallengeHistory(
            generated_at=now,
            since=since,
            step_s=step_s,
            timeline=summary.timeline(cells, since=since, step_s=step_s, points=points),
            recent=[
                ChallengeView(
                    id=c.id,
                    miner_hotkey=c.miner_hotkey,
                    worker_key=c.worker_key,
                    profile=c.profile,
                    n=c.n,
                    status=str(c.status),
                    failure_reason=c.failure_reason,
                    issued_at=c.issued_at,
                    finished_at=c.finished_at,
                    compute_s=c.compute_s,
                    throughput=c.throughput,
                )
                for c in recent
            ],
        )

    # -- scores and weights ----------------------------------------------------------------

    async def scores(self, *, points: int, hours: float | None = None) -> ScoreHistory:
        span_s = self.params.window_s if hours is None else hours * 3600.0
        return await self._cached(("scores", points, span_s), lambda: self._scores(points, span_s))

    async def _scores(self, points: int, span_s: float) -> ScoreHistory:
        # Imported here: the validator's scoring pulls numpy and the receipt checks, which
        # the rest of the gateway's REST layer does not need.
        from byteleap.validator.scores import compute_scores

        now = self.clock()
        metagraph = await self._metagraph() or await self._metagraph_from_store(now)
        async with self.store.session() as s:
            miners = {m.hotkey for m in await list_miners(s)}
        # Validators are on the metagraph too; unless they also mine, they are no line here.
        validators = {n.hotkey for n in metagraph.validators()} - miners
        step = span_s / max(1, points - 1)
        snapshots = []
        for i in range(points):
            at = now - (points - 1 - i) * step
            result = await compute_scores(
                self.store, metagraph, now=at, params=self.params, exclude=validators
            )
            snapshots.append(
                ScoreSnapshot(
                    at=at,
                    lease_active=result.board.lease_active,
                    miners=[
                        MinerScorePoint(
                            hotkey=m.hotkey,
                            challenge=m.challenge,
                            lease=m.lease,
                            final=m.final,
                            weight=result.weight_of(m.hotkey),
                        )
                        for m in result.board.miners
                    ],
                )
            )
        return ScoreHistory(generated_at=now, snapshots=snapshots)

    async def _metagraph_from_store(self, now: float) -> Metagraph:
        """Without a chain, the miners the store knows with their last uid (no permits, so
        no lease receipt verifies: lease scores read 0)."""
        async with self.store.session() as s:
            miners = await list_miners(s)
        neurons = [
            NeuronInfo(uid=m.uid, hotkey=m.hotkey, coldkey="", stake=0.0)
            for m in miners
            if m.uid is not None
        ]
        return Metagraph(netuid=0, block=0, neurons=neurons)

    async def weights(self, *, limit: int) -> WeightHistory:
        return await self._cached(("weights", limit), lambda: self._weights(limit))

    async def _weights(self, limit: int) -> WeightHistory:
        now = self.clock()
        async with self.store.session() as s:
            sets = await weights_history(s, limit=limit)
            hotkey_of = {m.uid: m.hotkey for m in await list_miners(s) if m.uid is not None}
        return WeightHistory(
            generated_at=now,
            sets=[
                WeightSetView(
                    id=w.id,
                    block=w.block,
                    computed_at=w.computed_at,
                    accepted=w.accepted,
                    weights=summary.weights_by_hotkey(w.weights, hotkey_of),
                )
                for w in reversed(sets)
            ],
        )


def _chain_info(metagraph: Metagraph | None) -> ChainInfo:
    if metagraph is None:
        return ChainInfo()
    return ChainInfo(
        netuid=metagraph.netuid,
        block=metagraph.block,
        neurons=len(metagraph.neurons),
        validators=len(metagraph.validators()),
    )


def _miner_summary(
    miner: MinerRecord,
    workers: list[WorkerRecord],
    counts: dict[int, WorkerChallengeCounts],
    passes: dict[int, tuple[float, ...]],
    shares: dict[int, float | None],
    online_now: set[int],
    weight: float | None,
) -> MinerSummary:
    rows = [
        _worker_summary(
            w, counts.get(w.id), passes.get(w.id, ()), shares.get(w.id), w.id in online_now
        )
        for w in workers
    ]
    passed = sum(r.passed for r in rows)
    failed = sum(r.failed for r in rows)
    return MinerSummary(
        hotkey=miner.hotkey,
        uid=miner.uid,
        axon=miner.axon,
        workers=len(rows),
        workers_online=sum(r.online for r in rows),
        gpus=sum(len(r.gpus) for r in rows),
        passed=passed,
        failed=failed,
        pass_rate=summary.pass_rate(passed, failed),
        weight=weight,
        last_seen_at=miner.last_seen_at,
        worker_list=rows,
    )


def _worker_summary(
    worker: WorkerRecord,
    counts: WorkerChallengeCounts | None,
    passes: tuple[float, ...],
    share: float | None,
    online: bool,
) -> WorkerSummary:
    by_status = counts.counts if counts is not None else {}
    hw = worker.hardware
    reading = gpu_reading([g.model for g in hw.gpus], passes)
    return WorkerSummary(
        worker_key=worker.worker_key,
        state=str(worker.state),
        online=online,
        cpu_model=hw.cpu_model,
        cpu_cores=hw.cpu_cores,
        ram_mb=hw.ram_mb,
        gpus=[GpuView(model=g.model, vram_mb=g.vram_mb) for g in hw.gpus],
        passed=by_status.get(ChallengeStatus.PASSED, 0),
        failed=summary.failures(by_status),
        availability=share,
        mean_throughput=counts.mean_throughput if counts is not None else None,
        last_seen_at=worker.last_seen_at,
        claimed_gpu_model=reading.claimed_model,
        measured_gpu_class=reading.measured_class,
        measured_throughput=reading.measured_throughput,
        gpu_model_mismatch=reading.mismatch,
    )
