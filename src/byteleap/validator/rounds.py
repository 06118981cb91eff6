"""One challenge round: every idle worker of every miner challenged at one instant.

A round lists every miner's workers, then sends each miner one batch holding a challenge for
each of its idle workers, all batches at once: a miner cannot serve its challenges one after
another through the same hardware, because each batch is credited by the time to its last
commitment (``validator.batch``, ``scoring.credit``). The spread of the sends across miners is
the round's skew, measured and reported. A round has an overall deadline: its last challenge
deadline plus ``reveal_budget_s``; a miner still answering then has timed out.

Each challenge is written to the store before it is sent and every step after is written
before the round returns, so a crash loses nothing that happened. A miner that times out,
answers garbage or disconnects costs only its own challenges.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field

from bittensor.signing import WalletLike, resolve_signer

from byteleap import metrics
from byteleap.chain.port import ChainPort, NeuronInfo
from byteleap.net.messages import WorkerState, WorkerView
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.proof import Profile, ReplayGuard, deadline_s, issue_challenge, size_challenge
from byteleap.protocol.gpu_models import canonical_model, challenge_flops, hardware_claim_problem
from byteleap.store import (
    ChallengeEnd,
    ChallengeStatus,
    NewChallenge,
    Store,
    end_challenges,
    record_challenges,
)
from byteleap.store.customer_work import customer_work_on
from byteleap.validator.batch import (
    BatchRun,
    DrawReveal,
    MinerSession,
    PlannedChallenge,
    ProtocolResult,
    worker_signature_check,
)
from byteleap.validator.listing import record_listing

__all__ = [
    "ChallengeOutcome",
    "ChallengePlan",
    "Connect",
    "RoundParams",
    "RoundReport",
    "RoundRunner",
    "worker_signature_check",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChallengePlan:
    """The size of one worker's challenge and how long it may take to commit."""

    n: int
    profile: Profile
    deadline_s: float
    products: int = 1

    @property
    def work_flops(self) -> float:
        return 2.0 * self.products * float(self.n) ** 3


@dataclass(frozen=True)
class RoundParams:
    n: int = 2048
    profile: Profile = Profile.CPU_F64
    gpu_profile: Profile = Profile.CUDA_F16  # for workers that report a GPU
    gpu_target_s: float = 1.8  # (param) a GPU challenge's time on the claimed card
    gpu_network_allowance_s: float = 0.25  # (param) added to a GPU challenge's deadline
    ttl_s: float = 60.0  # (param) from issue to the commitment's deadline
    max_workers_per_miner: int = 100  # (param)
    rows: int = 8  # s
    cols: int = 32  # t
    call_timeout_s: float = 30.0  # a listing
    reveal_budget_s: float = 30.0  # (param) the reveals' time after the last deadline
    # Added to that budget per challenge of the round: reveals are read and verified one core's
    # worth at a time, so a fixed budget that covers 256 challenges times out most of a full
    # subnet's 25,600 through no fault of their miners (``byteleap bench validator``).
    reveal_s_per_challenge: float = 0.015  # (param)
    # Reveals in flight at once. Unbounded, a validator busy verifying reads answers long after
    # they were signed and btauth/1 refuses them as stale (10 s): in a round of 2,560 workers
    # nine reveals in ten failed so (``byteleap bench validator``). A miner's own bound keeps
    # one that stalls its answers from holding all of the round's slots.
    reveals_in_flight: int = 64  # (param) the round's, all miners together
    reveals_in_flight_per_miner: int = 8  # (param)

    def reveal_budget_for(self, challenges: int) -> float:
        """A round's time for its reveals after its last deadline."""
        return self.reveal_budget_s + self.reveal_s_per_challenge * challenges

    def plan_for(self, worker: WorkerView) -> ChallengePlan | None:
        """A worker that reports a GPU is measured on it, sized to the model and VRAM it claims;
        any other on its CPU. None for a claim no real machine makes: never challenged."""
        hardware = worker.hardware
        if hardware_claim_problem(hardware) is not None:
            return None
        if not hardware.gpus:
            return ChallengePlan(self.n, self.profile, self.ttl_s)
        gpu = hardware.gpus[0]
        model = canonical_model(gpu.model)
        if model is None:
            return None
        size = size_challenge(
            self.gpu_profile,
            device_flops=challenge_flops(model, profile=self.gpu_profile),
            memory_bytes=min(gpu.vram_mib, model.vram_mib) << 20,
            target_s=self.gpu_target_s,
        )
        deadline = deadline_s(size) + self.gpu_network_allowance_s
        return ChallengePlan(size.n, self.gpu_profile, deadline, size.products)


@dataclass(frozen=True)
class ChallengeOutcome:
    miner_hotkey: str
    worker_id: str
    status: ChallengeStatus
    reason: str | None
    throughput: float | None = None


@dataclass
class RoundReport:
    started_at: float
    miners: int = 0
    unreachable: dict[str, str] = field(default_factory=dict)  # hotkey -> reason
    outcomes: list[ChallengeOutcome] = field(default_factory=list)
    skew_s: float = 0.0  # first to last batch send across miners

    def count(self, status: ChallengeStatus) -> int:
        return sum(1 for o in self.outcomes if o.status is status)


#: Opens a session with one miner; a test passes its own to drive the real round.
Connect = Callable[[NeuronInfo], AbstractAsyncContextManager[MinerSession]]


@dataclass
class _Target:
    worker: WorkerView
    worker_db_id: int
    plan: ChallengePlan


@dataclass
class _MinerRound:
    neuron: NeuronInfo
    session: MinerSession
    miner_id: int = 0
    targets: list[_Target] = field(default_factory=list)
    planned: list[PlannedChallenge] = field(default_factory=list)
    run: BatchRun | None = None


class RoundRunner:
    def __init__(
        self,
        wallet: WalletLike,
        chain: ChainPort,
        store: Store,
        params: RoundParams,
        clock: Callable[[], float] = time.time,
        *,
        connect: Connect | None = None,
        plan_for: Callable[[WorkerView], ChallengePlan | None] | None = None,
        draw: DrawReveal | None = None,
    ) -> None:
        self.wallet = wallet
        self.hotkey = resolve_signer(wallet, role="hotkey").ss58_address
        self.chain = chain
        self.store = store
        self.params = params
        self.clock = clock
        self.replay_guard = ReplayGuard()
        self.connect: Connect = connect or self._client
        self.plan_for = plan_for or params.plan_for
        self.draw = draw

    def _client(self, neuron: NeuronInfo) -> MinerClient:
        return MinerClient(self.wallet, neuron, timeout_s=self.params.call_timeout_s)

    async def run_round(self) -> RoundReport:
        report = RoundReport(started_at=self.clock())
        with metrics.ROUND_SECONDS.time():
            return await self._run_round(report)

    async def _run_round(self, report: RoundReport) -> RoundReport:
        metagraph = await self.chain.metagraph()
        neurons = [
            n
            for n in metagraph.neurons
            if n.hotkey != self.hotkey and n.axon_ip and n.axon_port and n.certificate
        ]
        report.miners = len(neurons)
        async with AsyncExitStack() as stack:
            miners: list[_MinerRound] = []
            for neuron in neurons:
                try:
                    session = await stack.enter_async_context(self.connect(neuron))
                except MinerCallError as exc:
                    self._unreachable(report, neuron, exc)
                    continue
                miners.append(_MinerRound(neuron, session))
            listed = await asyncio.gather(*(self._list(m) for m in miners), return_exceptions=True)
            ready = []
            for miner, result in zip(miners, listed, strict=True):
                if isinstance(result, MinerCallError):
                    self._unreachable(report, miner.neuron, result)
                elif isinstance(result, BaseException):
                    raise result  # store outages and bugs must not pass as a miner's fault
                elif miner.targets:
                    ready.append(miner)
            await self._issue(ready)
            report.skew_s = await self._run_batches(ready)
            for miner in ready:
                report.outcomes.extend(await self._finish(miner))
        metrics.ROUND_SKEW_SECONDS.observe(report.skew_s)
        log.info(
            "round done",
            extra={
                "miners": report.miners,
                "passed": report.count(ChallengeStatus.PASSED),
                "failed": len(report.outcomes) - report.count(ChallengeStatus.PASSED),
                "unreachable": len(report.unreachable),
                "skew_s": round(report.skew_s, 6),
            },
        )
        return report

    @staticmethod
    def _unreachable(report: RoundReport, neuron: NeuronInfo, exc: MinerCallError) -> None:
        report.unreachable[neuron.hotkey] = exc.reason
        metrics.MINERS_UNREACHABLE.labels(exc.reason).inc()

    async def _list(self, miner: _MinerRound) -> None:
        """Record the miner's listing and size a challenge for each idle worker."""
        listing = await miner.session.workers()
        miner.miner_id, ids = await record_listing(
            self.store, miner.neuron, listing, now=int(self.clock())
        )
        idle = [w for w in listing.workers if w.state is WorkerState.IDLE]
        for worker in idle[: self.params.max_workers_per_miner]:
            plan = self.plan_for(worker)
            if plan is None:
                log.warning("impossible hardware claim", extra={"worker": worker.worker_id})
                continue
            miner.targets.append(_Target(worker, ids[worker.worker_id], plan))

    async def _issue(self, miners: Sequence[_MinerRound]) -> None:
        """Draw every challenge of the round at one instant and store them all, before any is
        sent."""
        now = self.clock()
        news = []
        for miner in miners:
            for t in miner.targets:
                spec = issue_challenge(
                    t.plan.n, t.plan.profile, now=now, ttl_s=t.plan.deadline_s,
                    products=t.plan.products,
                )  # fmt: skip
                gpu = t.worker.hardware.gpus[0].model if t.worker.hardware.gpus else None
                news.append(
                    NewChallenge(
                        id=spec.challenge_id,
                        worker_id=t.worker_db_id,
                        miner_id=miner.miner_id,
                        profile=str(t.plan.profile),
                        n=t.plan.n,
                        seed=spec.seed.hex(),
                        issued_at=int(spec.issued_at),
                        deadline_at=int(spec.deadline),
                        claimed_gpu=gpu,
                    )
                )
                miner.planned.append(
                    PlannedChallenge(t.worker, t.worker_db_id, spec, spec.work_flops)
                )
        async with self.store.session() as s:
            await record_challenges(s, news)

    async def _run_batches(self, miners: Sequence[_MinerRound]) -> float:
        """Send every batch at once; wait until each is done or the round's deadline. Returns
        the skew: the spread of the sends."""
        if not miners:
            return 0.0
        loop = asyncio.get_running_loop()
        longest = max(t.plan.deadline_s for m in miners for t in m.targets)
        budget = self.params.reveal_budget_for(sum(len(m.targets) for m in miners))
        deadline = loop.time() + longest + budget
        slots = asyncio.Semaphore(self.params.reveals_in_flight)
        for miner in miners:
            miner.run = BatchRun(
                miner.session, miner.planned, self.params.rows, self.params.cols,
                self.replay_guard, self.clock, self.draw,
                self.params.reveals_in_flight_per_miner, slots,
            )  # fmt: skip

        async def bounded(run: BatchRun) -> None:
            try:
                async with asyncio.timeout_at(deadline):
                    await run.run(until=deadline)
            except TimeoutError:
                pass  # what is still open when the round ends is recorded as timed out
            run.credit()

        results = await asyncio.gather(
            *(bounded(m.run) for m in miners if m.run is not None), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result
        sends = [m.run.sent_at for m in miners if m.run is not None and m.run.sent_at is not None]
        return max(sends) - min(sends) if sends else 0.0

    async def _excused(
        self, miner: _MinerRound, planned: PlannedChallenge, refused: ProtocolResult
    ) -> ProtocolResult:
        """A refusal is a failure, unless this validator's own gateway held the worker for a
        customer at some moment between the challenge's issue and now (the listing raced the
        customer): then it counts for nobody (``abandoned``, reason ``preempted: lease …``)."""
        async with self.store.session() as s:
            work = await customer_work_on(
                s,
                miner_hotkey=miner.neuron.hotkey,
                worker_id=planned.worker.worker_id,
                since=planned.spec.issued_at,
                until=self.clock(),
            )
        if work is None:
            return refused
        log.info(
            "challenge preempted by a customer",
            extra={"worker": planned.worker.worker_id, "work": work, "refusal": refused.reason},
        )
        return ProtocolResult(ChallengeStatus.ABANDONED, f"preempted: {work}")

    async def _finish(self, miner: _MinerRound) -> list[ChallengeOutcome]:
        """Write each challenge's end to the store, all at once; one the round's deadline cut
        off has timed out."""
        outcomes = []
        ends = []
        results = miner.run.results if miner.run is not None else {}
        for planned in miner.planned:
            spec = planned.spec
            result = results.get(spec.challenge_id) or ProtocolResult(
                ChallengeStatus.TIMED_OUT, "round_deadline"
            )
            if _refused_before_commitment(result):
                result = await self._excused(miner, planned, result)
            if result.status is ChallengeStatus.COMMITTED:
                result = ProtocolResult(
                    ChallengeStatus.TIMED_OUT,
                    "round_deadline",
                    root=result.root,
                    commit_s=result.commit_s,
                    compute_s=result.compute_s,
                )
            ends.append(
                ChallengeEnd(
                    spec.challenge_id, result.status, failure_reason=result.reason,
                    root=result.root, commit_s=result.commit_s, compute_s=result.compute_s,
                    throughput=result.throughput,
                )
            )  # fmt: skip
            outcomes.append(
                ChallengeOutcome(
                    miner.neuron.hotkey,
                    planned.worker.worker_id,
                    result.status,
                    result.reason,
                    result.throughput,
                )
            )
        async with self.store.session() as s:
            await end_challenges(s, ends, at=int(self.clock()))
        now = self.clock()
        for planned, outcome in zip(miner.planned, outcomes, strict=True):
            metrics.CHALLENGES.labels(outcome.status.value).inc()
            elapsed = max(0.0, now - planned.spec.issued_at)
            metrics.CHALLENGE_SECONDS.labels(outcome.status.value).observe(elapsed)
        return outcomes


#: What a miner answers for a challenge whose worker a customer holds (its state forbids a
#: challenge, or the worker says it is busy).
_BUSY_REFUSALS = frozenset({"illegal_transition", "busy"})


def _refused_before_commitment(result: ProtocolResult) -> bool:
    return (
        result.status is ChallengeStatus.ERRORED
        and result.root is None
        and result.reason in _BUSY_REFUSALS
    )
