"""`byteleap bench scoring`: a full score + weights computation at network scale.

Fills a store (PostgreSQL by default, a database of its own that is dropped
afterwards) with synthetic history — miners × workers, availability over the
last ``hours``, IP history, one challenge per worker per round over the scoring
window — then times exactly what the weight loop does: read the window from the
store, score, normalise. The fill is labelled synthetic and timed separately.
"""

from __future__ import annotations

import random
import secrets
import time
from dataclasses import dataclass
from typing import Any

import asyncpg

from byteleap.chain.port import Metagraph, NeuronInfo
from byteleap.scoring import ScoringParams
from byteleap.store import (
    ChallengeRecord,
    ChallengeStatus,
    SpanRow,
    Store,
    WorkerIpRecord,
    bucket_of,
    bulk_insert_challenges,
    bulk_insert_spans,
    bulk_insert_worker_ips,
    open_store,
    upgrade,
    upsert_miner,
    upsert_workers,
)
from byteleap.validator.scores import compute_scores

WORKERS_PER_MINER = 100


@dataclass(frozen=True)
class PgServer:
    host: str = "127.0.0.1"
    port: int = 5432
    user: str = "postgres"
    admin_db: str = "test"

    def url(self, database: str) -> str:
        return f"postgresql+asyncpg://{self.user}@{self.host}:{self.port}/{database}"

    async def admin(self, sql: str) -> None:
        conn = await asyncpg.connect(
            host=self.host, port=self.port, user=self.user, database=self.admin_db, timeout=10
        )
        try:
            await conn.execute(sql)
        finally:
            await conn.close()


async def fill_history(
    store: Store, *, workers: int, hours: int, now: int, params: ScoringParams, seed: int = 0
) -> Metagraph:
    """Synthetic miners, workers, availability, IPs and challenges; returns the metagraph."""
    rng = random.Random(seed)
    miners = -(-workers // WORKERS_PER_MINER)  # the last miner may have fewer workers
    ids: list[tuple[int, int]] = []  # (miner id, worker id)
    neurons = []
    async with store.session() as s:
        for m in range(miners):
            hotkey = f"5Synthetic{m:06d}"
            miner = await upsert_miner(s, hotkey, uid=m, axon=None, at=now)
            count = min(WORKERS_PER_MINER, workers - m * WORKERS_PER_MINER)
            keys = [f"w-{m:08x}{i:08x}" for i in range(count)]
            ids += [
                (miner.id, wid)
                for wid in (await upsert_workers(s, miner.id, keys, at=now)).values()
            ]
            neurons.append(NeuronInfo(uid=m, hotkey=hotkey, coldkey=hotkey, stake=0.0))
    hi = bucket_of(now)
    lo = hi - hours * 12
    spans: list[SpanRow] = []
    ips: list[WorkerIpRecord] = []
    challenges: list[ChallengeRecord] = []
    rounds = int(params.window_s // params.round_interval_s)
    for miner_id, wid in ids:
        if rng.random() < 0.1:  # a flaky tenth: online every other bucket for the last day
            flaky_from = max(lo, hi - 288)
            if flaky_from > lo:
                spans.append(SpanRow(wid, lo, flaky_from))
            spans += [SpanRow(wid, b, b + 1) for b in range(flaky_from, hi, 2)]
        else:
            spans.append(SpanRow(wid, lo, hi))
        ips.append(
            WorkerIpRecord(
                wid, f"10.{wid >> 16 & 255}.{wid >> 8 & 255}.{wid & 255}", now - hours * 3600, now
            )
        )
        for k in range(rounds):
            at = int(now - params.window_s + params.round_interval_s * k)
            ok = rng.random() < 0.95
            challenges.append(
                ChallengeRecord(
                    id=f"{wid}-{k}",
                    worker_id=wid,
                    miner_id=miner_id,
                    profile="cpu-f64",
                    n=2048,
                    seed="00" * 32,
                    status=ChallengeStatus.PASSED if ok else ChallengeStatus.TIMED_OUT,
                    failure_reason=None if ok else "timeout",
                    claimed_gpu=None,
                    root=None,
                    issued_at=at,
                    deadline_at=at + 60,
                    finished_at=at + 5,
                    rtt_s=0.01,
                    commit_s=2.0,
                    compute_s=1.9,
                    throughput=rng.uniform(1e9, 2e9) if ok else None,
                )
            )
    async with store.session() as s:
        await bulk_insert_spans(s, spans)
        await bulk_insert_worker_ips(s, ips)
        await bulk_insert_challenges(s, challenges)
    return Metagraph(netuid=1, block=0, neurons=neurons)


async def run_scale_bench(
    workers: int, hours: int, *, url: str | None = None, server: PgServer | None = None
) -> dict[str, Any]:
    server = server or PgServer()
    database = None
    if url is None:
        database = f"byteleap_bench_{secrets.token_hex(4)}"
        await server.admin(f'CREATE DATABASE "{database}"')
        url = server.url(database)
    params = ScoringParams()
    now = int(time.time())
    try:
        await upgrade(url)
        store = await open_store(url)
        try:
            started = time.perf_counter()
            metagraph = await fill_history(
                store, workers=workers, hours=hours, now=now, params=params
            )
            fill_s = time.perf_counter() - started
            started = time.perf_counter()
            result = await compute_scores(store, metagraph, now=now, params=params)
            seconds = time.perf_counter() - started
        finally:
            await store.close()
    finally:
        if database is not None:
            await server.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    return {
        "workers": workers,
        "miners": len(metagraph.neurons),
        "hours": hours,
        "challenges": workers * int(params.window_s // params.round_interval_s),
        "backend": url.split(":", 1)[0],
        "synthetic_history": True,
        "fill_s": round(fill_s, 3),
        "seconds": round(seconds, 3),
        "weights": len(result.weights),
    }
