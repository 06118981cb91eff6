"""Network simulation: the validator's real rules against every cheat we know, at small scale.

Every round, every miner gets one batch (``validator.batch``'s rule) sized by the real
``RoundParams.plan_for`` from what its workers claim. A miner's devices serve the batch in the
miner's chosen order; when each challenge finishes follows from its work and the device's
real throughput (a timing model, not a clock); a challenge that finishes after its deadline
has timed out; passes are credited with the real ``scoring.credit.batch_credit``. Whether a
product verifies comes from the real protocol at small n (``issue_challenge`` → solve or cheat
→ ``commit`` → ``draw_reveal`` → ``answer_reveal`` → ``verify``). Identity flags come from
``protocol.identity``, lease revenue goes through the real lease rules, and the real scoring
turns it all into weights.

Miner types (``MinerType``): honest (H100s), honest-mixed (four models, each sized to its
claim), spiky, half-offline, ip-hopping; the product cheats (lazy, partial-compute,
low-precision, sparse-error, ``proof.cheats.Cheat``); and the claim cheats
(``proof.cheats.MinerCheat``): multiplex (one GPU behind eight workers), shared-hotkeys (one box
under two hotkeys), model-spoof (an RTX 3090 claiming to be an H100), refuse-reveal (half the
rows, refusing the reveals it cannot answer), wash-lease (a worker no real machine matches,
rented by its own miner).

For each type the result gives its weight share; ``credit_ratio``, what its passes were
credited per round over its real hardware's throughput (about 1.0 for honest hardware); and
``weight_over_hardware``, its weight over what the same real hardware earns in the honest H100
fleet. Honest miners run fleets of ``workers_per_miner`` cards and each cheater owns one real
card, so ``cheater_share`` is what the cheats add to a network of real fleets.
``wash_gain_over_cost`` is a separate experiment: an honest miner that also rents
its own worker, its weight gain in emission value over what it paid (the lease ramp keeps it
at most 1).
"""

from __future__ import annotations

import math
import random
from collections import Counter
from typing import Any

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
from byteleap.proof.cheats import cheat_rows, exact_rows, refuses, refusing_solution
from byteleap.proof.merkle import TreeKeys
from byteleap.protocol.identity import WorkerIdentity
from byteleap.scoring.board import score_network
from byteleap.scoring.credit import batch_credit
from byteleap.scoring.params import ScoringParams
from byteleap.scoring.records import (
    ChallengeRecord,
    FailureReason,
    IpChange,
    LeaseRevenue,
    Verdict,
    WorkerAvailability,
)
from byteleap.scoring.verdicts import failure_reason_of
from byteleap.scoring.weights import normalise_weights
from byteleap.validator.flags import worker_flags
from byteleap.validator.rounds import ChallengePlan, RoundParams
from byteleap.validator.simulation_fleet import (
    CHEATERS,
    PRODUCT_CHEAT,
    MinerType,
    Network,
    SimWorker,
    build_network,
)

__all__ = ["CHEATERS", "MinerType", "run_network_simulation"]

_START = 1_700_000_000.0
_VERIFY_N = 64  # the real protocol's size for verdicts; timing uses the claimed size


# What a product cheat saves, so what it could claim to be: it finishes sooner.
_CHEAT_SPEEDUP = {
    MinerType.LAZY: 100.0,
    MinerType.PARTIAL: 2.0,
    MinerType.LOW_PRECISION: 2.0,
    MinerType.SPARSE_ERROR: 1.1,
}
_WASH_PRICE = 0.01  # what the wash-lease miner pays itself each round


def _speed(worker: SimWorker, round_no: int, rng: random.Random) -> float:
    """This round's speed of the worker's device, as a multiple of its base."""
    if worker.kind is MinerType.SPIKY:
        # The same mean as steady (0.8·4 + 1.8 = 5), slow rounds still inside the deadline.
        return 1.8 if (round_no + int(worker.worker_id[-2:], 16)) % 5 == 0 else 0.8
    return _CHEAT_SPEEDUP.get(worker.kind, 1.0) * rng.uniform(0.995, 1.005)


def _finish_times(
    batch: list[tuple[SimWorker, ChallengePlan]], round_no: int, rng: random.Random
) -> list[float]:
    """When each challenge of the round is done: every batch starts at once and each device
    serves its queue one challenge at a time, in a random order — except a multiplexer's,
    which always serves the same worker first (the best it can do: one steady pass)."""
    rank = [
        (i, float(j)) if w.kind is MinerType.MULTIPLEX else (i, rng.random())
        for j, (w, _) in enumerate(batch)
        for i in [j]
    ]
    order = [i for i, _ in sorted(rank, key=lambda r: r[1])]
    busy_until: dict[int, float] = {}
    done = [0.0] * len(batch)
    for i in order:
        worker, plan = batch[i]
        speed = worker.device.flops * _speed(worker, round_no, rng)
        start = busy_until.get(id(worker.device), 0.0)
        done[i] = start + plan.work_flops / speed
        busy_until[id(worker.device)] = done[i]
    return done


def _verdict(worker: SimWorker, at: float, rng: random.Random) -> FailureReason | str | None:
    """The real protocol at small n: None when it verifies, else why not (``refused``)."""
    issued = issue_challenge(_VERIFY_N, Profile.CPU_F64, now=at, ttl_s=60.0)
    spec: ChallengeSpec = issued.model_copy(
        update={"seed": rng.randbytes(32), "challenge_id": f"sim{rng.getrandbits(64):x}"}
    )
    computed: frozenset[int] | None = None
    if worker.kind is MinerType.REFUSE_REVEAL:
        solution, computed = refusing_solution(spec, rng)
    else:
        rows = (
            cheat_rows(PRODUCT_CHEAT[worker.kind], spec, rng)
            if worker.kind in PRODUCT_CHEAT
            else exact_rows(spec)
        )
        tree = tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), rows)
        solution = Solution(spec, Product(tree, lambda i: rows[i].tobytes()), 0.0)
    commitment = commit(solution, worker.sign)
    request = draw_reveal(spec, commitment, rng=rng)
    if computed is not None and refuses(request, computed):
        return "refused"
    reveal = answer_reveal(solution, request)
    verdict = verify(
        spec, commitment, request, reveal, now=at, verify_signature=worker.signature_ok
    )
    return failure_reason_of(verdict)


def _round(
    net: Network, round_no: int, at: float, params: RoundParams, rng: random.Random
) -> tuple[list[ChallengeRecord], dict[MinerType, float]]:
    records: list[ChallengeRecord] = []
    credit: dict[MinerType, float] = Counter()
    issued: list[tuple[SimWorker, ChallengePlan]] = []
    for worker in net.workers:
        if worker.kind is MinerType.HALF_OFFLINE and rng.random() < 0.5:
            continue  # offline: its miner does not list it, so nothing is issued
        plan = params.plan_for(worker.view)
        if plan is not None:  # an impossible claim is never challenged
            issued.append((worker, plan))
    finishes = _finish_times(issued, round_no, rng)  # all miners at once, devices shared
    passed: dict[str, list[tuple[SimWorker, float, float]]] = {}
    for (worker, plan), finish in zip(issued, finishes, strict=True):
        why = _verdict(worker, at, rng) if finish <= plan.deadline_s else FailureReason.TIMEOUT
        if why is None:
            passed.setdefault(worker.miner, []).append((worker, plan.work_flops, finish))
            continue
        reason = FailureReason.DISCONNECTED if why == "refused" else FailureReason(why)
        records.append(ChallengeRecord(worker.worker_id, worker.miner, at, Verdict.FAILED, reason))
    for miner, batch in sorted(passed.items()):
        credited = batch_credit([w for _, w, _ in batch], max(f for _, _, f in batch))
        for (worker, _, _), flops in zip(batch, credited, strict=True):
            records.append(ChallengeRecord(worker.worker_id, miner, at, Verdict.OK, None, flops))
            credit[worker.kind] += flops
    return records, credit


def _history(
    workers: list[SimWorker], params: ScoringParams, now: float
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


def _flags(net: Network, records: list[ChallengeRecord]) -> dict[tuple[str, str], str]:
    """What the validator flags (``validator.flags``), from the listings and the passes."""
    identities = [
        WorkerIdentity(
            w.miner, w.worker_id, w.view.public_key, tuple(g.uuid for g in w.view.hardware.gpus)
        )
        for w in net.workers
    ]
    passes: dict[tuple[str, str], list[float]] = {}
    for r in records:
        if r.verdict is Verdict.OK:
            passes.setdefault(r.key, []).append(r.throughput_flops)
    claims = {(w.miner, w.worker_id): [g.model for g in w.view.hardware.gpus] for w in net.workers}
    return worker_flags(identities, claims, passes)


def _wash_leases(net: Network, rounds: int, interval_s: float) -> list[LeaseRevenue]:
    """The wash-lease miner pays itself for its own worker every round."""
    return [
        LeaseRevenue(w.miner, _WASH_PRICE, _START + r * interval_s, w.worker_id, _START)
        for w in net.workers
        if w.kind is MinerType.WASH_LEASE
        for r in range(rounds)
    ]


def _weights(board_miners: list[str], finals: dict[str, float]) -> dict[str, float]:
    uids = {h: i for i, h in enumerate(board_miners)}
    weights = normalise_weights(finals, uids)
    return {h: weights.get(uids[h], 0.0) for h in board_miners}


def run_network_simulation(
    rounds: int,
    seed: int,
    *,
    workers_per_miner: int = 64,
    params: ScoringParams | None = None,
    round_params: RoundParams | None = None,
) -> dict[str, Any]:
    """Simulate ``rounds`` challenge rounds and score the network; shares are weight shares.

    ``params`` lets a caller switch a rule off (e.g. ``wrong_answer_ban_min=0``) to see what it
    is worth.
    """
    params = params or ScoringParams()
    plans = round_params or RoundParams()
    rng = random.Random(seed)
    net = build_network(workers_per_miner, rng)
    records: list[ChallengeRecord] = []
    credit: Counter[MinerType] = Counter()
    for round_no in range(rounds):
        at = _START + round_no * params.round_interval_s
        got, credited = _round(net, round_no, at, plans, rng)
        records += got
        credit.update(credited)
    now = _START + max(rounds - 1, 0) * params.round_interval_s
    avail, hops = _history(net.workers, params, now)
    leases = _wash_leases(net, rounds, params.round_interval_s)
    board = score_network(
        records, avail, hops, leases, now=now, params=params, flagged=_flags(net, records)
    )
    by_hotkey = _weights([m.hotkey for m in board.miners], board.final_scores())
    shares = {
        k.value: math.fsum(
            v for h, v in by_hotkey.items() if h in (f"miner-{k.value}", f"miner-{k.value}-2")
        )
        for k in MinerType
    }
    ratio = {
        k.value: (credit[k] / rounds / net.hardware_flops[k] if net.hardware_flops[k] else 0.0)
        for k in MinerType
    }
    # The weight a flop of honest H100 hardware earns, to price each type's real hardware.
    per_flop = shares[MinerType.HONEST.value] / net.hardware_flops[MinerType.HONEST]
    over_hardware = {
        k.value: (
            shares[k.value] / (per_flop * net.hardware_flops[k]) if net.hardware_flops[k] else 0.0
        )
        for k in MinerType
    }
    spiky = shares[MinerType.SPIKY.value]
    outcomes = Counter(
        (r.miner_hotkey.removeprefix("miner-"), str(r.failure_reason or "ok")) for r in records
    )
    return {
        "rounds": rounds,
        "seed": seed,
        "challenges": len(records),
        "shares": shares,
        "cheater_share": math.fsum(shares[k.value] for k in CHEATERS),
        "credit_ratio": ratio,
        "weight_over_hardware": over_hardware,
        "steady_over_spiky": shares[MinerType.HONEST.value] / spiky if spiky > 0 else None,
        "wash_gain_over_cost": _wash_experiment(records, avail, hops, now, params),
        "outcomes": {f"{kind}:{why}": count for (kind, why), count in sorted(outcomes.items())},
    }


def _wash_experiment(
    records: list[ChallengeRecord],
    avail: list[WorkerAvailability],
    hops: list[IpChange],
    now: float,
    params: ScoringParams,
) -> float:
    """An honest miner rents its own (challenged, passing) worker for ``cost``: its weight gain,
    valued at the emission it buys (``lease_emission_value``), over what it paid."""
    honest = next(
        r for r in records if r.miner_hotkey == "miner-honest" and r.verdict is Verdict.OK
    )
    cost = 0.05 * params.lease_emission_value
    wash = [LeaseRevenue(honest.miner_hotkey, cost, now, honest.worker_id, now - 60.0)]
    before = score_network(records, avail, hops, now=now, params=params)
    after = score_network(records, avail, hops, wash, now=now, params=params)
    hotkeys = [m.hotkey for m in before.miners]
    gain = (
        _weights(hotkeys, after.final_scores())[honest.miner_hotkey]
        - _weights(hotkeys, before.final_scores())[honest.miner_hotkey]
    )
    return gain * params.lease_emission_value / cost
