"""Network simulation: real proof verification at small n feeding the real scoring.

Each miner type runs ``workers_per_miner`` workers through ``rounds`` challenge rounds. Every
challenge goes through the real protocol (``issue_challenge`` → solve → ``commit`` →
``draw_reveal`` → ``answer_reveal`` → ``verify``); a cheat is a correct product tampered the
way that cheat would produce it, then committed and revealed honestly from the tampered rows:

- lazy: computes nothing, commits zeros, claims 100× the honest speed;
- partial-compute: computes a fraction f (0.5) of the rows, zeros elsewhere, claims 1/f×;
- low-precision: accumulates in float32 instead of exactly, claims 2×;
- sparse-error: one wrong entry in 10 % of the rows (a corner cut), claims 1.1×;
- honest (steady), spiky (0.5× four rounds in five, 3× the fifth: the same mean),
  half-time-offline (misses half the rounds and half the buckets), ip-hopping (honest compute,
  six IP changes in the availability window).

Throughput is simulated (2n³ / claimed compute time); only the verdicts come from the real
verifier. The challenge seeds and reveal draws come from ``seed``, so a run is reproducible.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import blake3

from byteleap.proof import (
    ChallengeSpec,
    Product,
    Profile,
    Solution,
    answer_reveal,
    commit,
    draw_reveal,
    issue_challenge,
    verify,
)
from byteleap.proof.backends import tree_of_rows
from byteleap.proof.cheats import PARTIAL_FRACTION, Cheat, cheat_rows, exact_rows
from byteleap.proof.merkle import TreeKeys
from byteleap.scoring.board import score_network
from byteleap.scoring.params import ScoringParams
from byteleap.scoring.records import (
    ChallengeRecord,
    IpChange,
    Verdict,
    WorkerAvailability,
)
from byteleap.scoring.verdicts import failure_reason_of
from byteleap.scoring.weights import normalise_weights

__all__ = ["CHEATERS", "MinerType", "run_network_simulation"]

_BASE_FLOPS = 1e14
_START = 1_700_000_000.0


class MinerType(StrEnum):
    HONEST = "honest"
    SPIKY = "spiky"
    HALF_OFFLINE = "half-offline"
    IP_HOPPING = "ip-hopping"
    LAZY = "lazy"
    PARTIAL = "partial-compute"
    LOW_PRECISION = "low-precision"
    SPARSE_ERROR = "sparse-error"


CHEATERS = frozenset(
    {MinerType.LAZY, MinerType.PARTIAL, MinerType.LOW_PRECISION, MinerType.SPARSE_ERROR}
)

_CLAIMED_SPEEDUP = {
    MinerType.LAZY: 100.0,
    MinerType.PARTIAL: 1.0 / PARTIAL_FRACTION,
    MinerType.LOW_PRECISION: 2.0,
    MinerType.SPARSE_ERROR: 1.1,
}


@dataclass(frozen=True)
class _Worker:
    kind: MinerType
    miner: str
    worker_id: str
    mac_key: bytes

    def sign(self, payload: bytes) -> bytes:
        return blake3.blake3(payload, key=self.mac_key).digest()

    def signature_ok(self, payload: bytes, signature: bytes) -> bool:
        return self.sign(payload) == signature


_CHEAT_OF: dict[MinerType, Cheat] = {
    MinerType.LAZY: Cheat.LAZY,
    MinerType.PARTIAL: Cheat.PARTIAL,
    MinerType.LOW_PRECISION: Cheat.LOW_PRECISION,
    MinerType.SPARSE_ERROR: Cheat.SPARSE_ERROR,
}


def _solution(
    worker: _Worker, spec: ChallengeSpec, compute_s: float, rng: random.Random
) -> Solution:
    if worker.kind not in CHEATERS:
        rows = exact_rows(spec)
    else:
        rows = cheat_rows(_CHEAT_OF[worker.kind], spec, rng)
    tree = tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), rows)
    return Solution(spec, Product(tree, lambda i: rows[i].tobytes()), compute_s)


def _speed(worker: _Worker, round_no: int, rng: random.Random) -> float:
    """The throughput the worker claims this round, as a multiple of the honest base."""
    if worker.kind is MinerType.SPIKY:
        return 3.0 if (round_no + int(worker.worker_id[1:])) % 5 == 0 else 0.5
    jitter = rng.uniform(0.99, 1.01)
    return _CLAIMED_SPEEDUP.get(worker.kind, 1.0) * jitter


def _challenge(
    worker: _Worker, round_no: int, at: float, n: int, rng: random.Random
) -> ChallengeRecord:
    """One challenge through the real protocol, recorded the way a round records it."""
    issued = issue_challenge(n, Profile.CPU_F64, now=at, ttl_s=60.0)
    # Re-keyed from the simulation's own generator so that a seed reproduces a run.
    spec = issued.model_copy(
        update={"seed": rng.randbytes(32), "challenge_id": f"sim{rng.getrandbits(64):x}"}
    )
    flops = 2.0 * n**3
    compute_s = flops / (_BASE_FLOPS * _speed(worker, round_no, rng))
    solution = _solution(worker, spec, compute_s, rng)
    commitment = commit(solution, worker.sign)
    request = draw_reveal(spec, commitment, rng=rng)
    reveal = answer_reveal(solution, request)
    verdict = verify(
        spec, commitment, request, reveal, now=at + compute_s, verify_signature=worker.signature_ok
    )
    reason = failure_reason_of(verdict)
    if reason is None:
        return ChallengeRecord(
            worker.worker_id, worker.miner, at, Verdict.OK, None, flops / compute_s
        )
    return ChallengeRecord(worker.worker_id, worker.miner, at, Verdict.FAILED, reason)


def _workers(per_miner: int, rng: random.Random) -> list[_Worker]:
    return [
        _Worker(kind, f"miner-{kind.value}", f"w{j}", rng.randbytes(32))
        for kind in MinerType
        for j in range(per_miner)
    ]


def _history(
    workers: list[_Worker], params: ScoringParams, now: float
) -> tuple[list[WorkerAvailability], list[IpChange]]:
    """Availability buckets and IP changes over the 169 h window, per behaviour."""
    full = params.availability_buckets
    avail, hops = [], []
    for w in workers:
        online = full // 2 if w.kind is MinerType.HALF_OFFLINE else full
        avail.append(WorkerAvailability(w.miner, w.worker_id, online))
        if w.kind is MinerType.IP_HOPPING:
            span = params.availability_hours * 3600.0
            hops += [IpChange(w.miner, w.worker_id, now - span * k / 7) for k in range(1, 7)]
    return avail, hops


def run_network_simulation(
    rounds: int,
    seed: int,
    *,
    n: int = 64,
    workers_per_miner: int = 2,
    params: ScoringParams | None = None,
) -> dict[str, Any]:
    """Simulate ``rounds`` challenge rounds and score the network; shares are weight shares.

    ``params`` lets a caller switch a rule off (e.g. ``wrong_answer_ban_min=0``) to see what it
    is worth.
    """
    params = params or ScoringParams()
    rng = random.Random(seed)
    workers = _workers(workers_per_miner, rng)
    records: list[ChallengeRecord] = []
    for round_no in range(rounds):
        at = _START + round_no * params.round_interval_s
        for w in workers:
            if w.kind is MinerType.HALF_OFFLINE and rng.random() < 0.5:
                continue  # offline: its miner does not offer it, so no challenge is issued
            records.append(_challenge(w, round_no, at, n, rng))
    now = _START + max(rounds - 1, 0) * params.round_interval_s
    avail, hops = _history(workers, params, now)
    board = score_network(records, avail, hops, now=now, params=params)
    uids = {m.hotkey: i for i, m in enumerate(board.miners)}
    weights = normalise_weights(board.final_scores(), uids)
    shares = {k.value: weights.get(uids[f"miner-{k.value}"], 0.0) for k in MinerType}
    spiky = shares[MinerType.SPIKY.value]
    outcomes = Counter(
        (r.miner_hotkey.removeprefix("miner-"), str(r.failure_reason or "ok")) for r in records
    )
    return {
        "rounds": rounds,
        "seed": seed,
        "n": n,
        "challenges": len(records),
        "shares": shares,
        "cheater_share": sum(shares[k.value] for k in CHEATERS),
        "steady_over_spiky": shares[MinerType.HONEST.value] / spiky if spiky > 0 else None,
        "outcomes": {f"{kind}:{why}": count for (kind, why), count in sorted(outcomes.items())},
    }
