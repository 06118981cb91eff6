"""From the store to a ScoreBoard and weights: read the window, hand plain arrays to scoring.

Reads per-worker summaries (counts by status, sorted pass throughputs, newest
verified failure) rather than one row per challenge: a full window at 25,600
workers is over a million challenges, and the summaries are all scoring needs.
Any read that fails raises, so weights are never computed from part of the data.

Lease revenue counts only where a passed challenge vouches for its worker (see
``byteleap.scoring.leases``); the summaries carry no pass times, so the validator reads, per
lease in the window, the worker's first pass since ``lease_challenge_window_min`` before the
lease began and hands those to scoring. Workers that list one key or GPU under two workers or
two hotkeys (``byteleap.protocol.identity``) are flagged: no challenge score, no lease revenue.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np

from byteleap.chain.port import Metagraph
from byteleap.net.receipts import LeaseReceipt, verify_receipts
from byteleap.protocol.identity import WorkerIdentity
from byteleap.scoring import (
    ChallengeColumns,
    LeaseRevenue,
    ScoreBoard,
    ScoringParams,
    WorkerKey,
    normalise_weights,
    score_columns,
)
from byteleap.store import (
    ChallengeStatus,
    LeaseKey,
    Store,
    WorkerChallengeSummary,
    WorkerRecord,
    bucket_of,
    challenge_summaries,
    first_passes,
    ip_history,
    lease_starts,
    list_miners,
    list_workers,
    online_buckets,
    worker_identities,
)
from byteleap.store.receipts import ReceiptRecord, receipts_in_window
from byteleap.store.validations import penalised_miners
from byteleap.validator.flags import worker_flags
from byteleap.validator.lease_revenue import lease_revenue

log = logging.getLogger(__name__)

_FAILURES = (ChallengeStatus.FAILED, ChallengeStatus.TIMED_OUT, ChallengeStatus.ERRORED)
# Identities listed within this many rounds are compared: a box listed twice shows up in the
# same round (alternating rounds gains nothing: one box still answers one challenge a round),
# and an honest worker renamed or moved stops matching its old self a few rounds later.
_IDENTITY_ROUNDS = 3
_NO_STARTS: Mapping[LeaseKey, int] = {}


@dataclass(frozen=True)
class ScoreResult:
    board: ScoreBoard
    weights: dict[int, float]  # uid -> weight, empty when nobody earned anything
    uids: dict[str, int]  # hotkey -> uid on the metagraph scored against

    def weight_of(self, hotkey: str) -> float:
        uid = self.uids.get(hotkey)
        return self.weights.get(uid, 0.0) if uid is not None else 0.0


def summaries_to_columns(
    summaries: list[WorkerChallengeSummary], index: dict[int, int], *, inside: float
) -> ChallengeColumns:
    """Rebuild challenge columns from per-worker summaries.

    Passes and plain failures only need to fall inside the window (``inside``);
    verified wrong answers carry the newest one's time, which is what the ban reads.
    """
    worker: list[int] = []
    at: list[float] = []
    ok: list[bool] = []
    wrong: list[bool] = []
    throughput: list[float] = []
    for summary in summaries:
        i = index[summary.worker_id]
        for value in summary.throughputs:
            worker.append(i), at.append(inside), ok.append(True), wrong.append(False)
            throughput.append(value)
        for status in _FAILURES:
            verified = status is ChallengeStatus.FAILED
            when = float(summary.last_failed_at or inside) if verified else inside
            for _ in range(summary.counts.get(status, 0)):
                worker.append(i), at.append(when), ok.append(False), wrong.append(verified)
                throughput.append(0.0)
    return ChallengeColumns(
        worker=np.array(worker, dtype=np.intp),
        at=np.array(at, dtype=np.float64),
        ok=np.array(ok, dtype=np.bool_),
        wrong=np.array(wrong, dtype=np.bool_),
        throughput=np.array(throughput, dtype=np.float64),
    )


def verified_revenue(
    receipts: list[ReceiptRecord],
    metagraph: Metagraph,
    *,
    now: float,
    params: ScoringParams,
    lease_starts: Mapping[LeaseKey, int] = _NO_STARTS,
) -> list[LeaseRevenue]:
    """Lease revenue from the receipts that verify against ``metagraph``; others are logged.

    ``lease_starts`` (``store.lease_starts``) dates each lease's start for the challenge check.
    """
    if not receipts:
        return []
    models = [LeaseReceipt.model_validate(asdict(r)) for r in receipts]
    verdicts = verify_receipts(
        models,
        netuid=metagraph.netuid,
        validators={n.hotkey for n in metagraph.neurons if n.validator_permit},
        miners={n.hotkey for n in metagraph.neurons},
        now=now,
        max_age_s=params.lease_window_min * 60.0 + 3600.0,
    )
    for verdict in verdicts:
        if not verdict.ok:
            log.warning(
                "lease receipt rejected",
                extra={"receipt": verdict.receipt_id, "why": verdict.reason},
            )
    return lease_revenue([m for m, v in zip(models, verdicts, strict=True) if v.ok], lease_starts)


def vouching_passes(
    leases: list[LeaseRevenue],
    first: Mapping[tuple[int, int], int],
    ids: Mapping[WorkerKey, int],
    *,
    lookback_s: float,
) -> dict[WorkerKey, list[float]]:
    """Per worker, the passes that may vouch for its leases: for each lease, the first pass
    since ``lookback_s`` before the lease began (``first`` from ``store.first_passes``).

    That one pass decides the lease: there is a pass in ``[start − lookback, at]`` exactly
    when the first one after ``start − lookback`` is no later than ``at``.
    """
    passes: dict[WorkerKey, set[float]] = {}
    for lease in leases:
        wid = ids.get(lease.key)
        when = None if wid is None else first.get((wid, _since(lease, lookback_s)))
        if when is not None:
            passes.setdefault(lease.key, set()).add(float(when))
    return {k: sorted(v) for k, v in passes.items()}


def _since(lease: LeaseRevenue, lookback_s: float) -> int:
    # Challenge times are whole seconds, so "at or after t" is "at or after ceil(t)".
    return math.ceil(lease.anchor - lookback_s)


def _flags(
    identities: list[WorkerIdentity],
    workers: list[WorkerRecord],
    keys: list[WorkerKey],
    summaries: list[WorkerChallengeSummary],
    wrong_output: set[str],
) -> dict[WorkerKey, str]:
    """``validator.flags.worker_flags`` over what the store holds."""
    throughputs = {r.worker_id: r.throughputs for r in summaries}
    claims = {k: [g.model for g in w.hardware.gpus] for k, w in zip(keys, workers, strict=True)}
    passes = {k: throughputs.get(w.id, ()) for k, w in zip(keys, workers, strict=True)}
    return worker_flags(identities, claims, passes, wrong_output)


async def compute_scores(
    store: Store,
    metagraph: Metagraph,
    *,
    now: float,
    params: ScoringParams,
    exclude: set[str] | None = None,
) -> ScoreResult:
    """Score every miner the store knows or the metagraph lists, as of ``now``.

    Lease revenue comes from the lease receipts in the store, each checked again here
    against the current metagraph: a receipt counts only while its gateway holds a
    validator permit and both signatures verify.
    """
    since = now - params.window_s
    avail_since = now - params.availability_hours * 3600.0
    lease_since = int(now - params.lease_window_min * 60.0)
    async with store.session() as s:
        # Children before parents: SQLite reads here are not one snapshot, and a row
        # written between two reads must never name a worker or miner not yet read.
        summaries = await challenge_summaries(s, since=int(since), until=int(now) + 1)
        online = await online_buckets(s, bucket_of(avail_since) + 1, bucket_of(now) + 1)
        ips = await ip_history(s, since=int(avail_since), until=int(now))
        receipts = await receipts_in_window(s, lease_since, int(now))
        starts = await lease_starts(s, since=lease_since, until=int(now))
        identities = await worker_identities(
            s, seen_since=int(now - _IDENTITY_ROUNDS * params.round_interval_s)
        )
        workers = await list_workers(s)
        miners = {m.id: m.hotkey for m in await list_miners(s)}
        # A miner whose worker returned a wrong result for a re-executed job earns nothing,
        # leases or challenges, for the lease window (see gateway.output_verdicts): passing
        # challenges while faking customers' results must not pay.
        wrong_output = await penalised_miners(
            s, since=now - params.lease_window_min * 60.0, until=now
        )
    skip = exclude or set()
    leases = [
        r
        for r in verified_revenue(receipts, metagraph, now=now, params=params, lease_starts=starts)
        if r.miner_hotkey not in wrong_output
    ]
    keys: list[WorkerKey] = [(miners[w.miner_id], w.worker_key) for w in workers]
    ids = dict(zip(keys, (w.id for w in workers), strict=True))
    lookback = params.lease_challenge_window_min * 60.0
    async with store.session() as s:
        first = await first_passes(
            s, {(ids[r.key], _since(r, lookback)) for r in leases if r.key in ids}
        )
    index = {w.id: i for i, w in enumerate(workers)}
    columns = summaries_to_columns(summaries, index, inside=now - 1.0)
    online_counts = np.array([online.get(w.id, 0) for w in workers], dtype=np.int64)
    # Every stretch at a new address after the first one is a change of IP.
    stretches = Counter(r.worker_id for r in ips)
    changes = np.array([max(0, stretches.get(w.id, 0) - 1) for w in workers], dtype=np.int64)
    hotkeys = [n.hotkey for n in metagraph.neurons if n.hotkey not in skip]
    board = score_columns(
        keys,
        columns,
        online_counts,
        changes,
        leases,
        now=now,
        params=params,
        miners=hotkeys,
        flagged=_flags(identities, workers, keys, summaries, wrong_output),
        lease_passes=vouching_passes(leases, first, ids, lookback_s=lookback),
    )
    uids = {n.hotkey: n.uid for n in metagraph.neurons if n.hotkey not in skip}
    weights = normalise_weights(board.final_scores(), uids)
    return ScoreResult(board=board, weights=weights, uids=uids)
