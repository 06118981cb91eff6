"""One challenge round: every miner on the metagraph, each idle worker challenged once.

Each challenge is written to the store before it is sent and every step after
is written before the next one starts, so a crash loses nothing that happened.
A miner that times out, answers garbage or disconnects costs only its own
challenges; miners run concurrently and each call is bounded in time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bittensor.signing import WalletLike, resolve_signer
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from byteleap import metrics
from byteleap.chain.port import ChainPort, NeuronInfo
from byteleap.net.messages import WorkerList, WorkerState, WorkerView
from byteleap.proof import (
    ChallengeSpec,
    Profile,
    ReplayGuard,
    SignatureCheck,
    draw_reveal,
    issue_challenge,
    verify,
)
from byteleap.store import (
    ChallengeStatus,
    GpuInfo,
    IllegalTransition,
    NewChallenge,
    Store,
    WorkerHardware,
    advance_challenge,
    bucket_of,
    mark_online,
    record_challenge,
    record_worker_ip,
    set_worker_hardware,
    set_worker_state,
    upsert_miner,
    upsert_workers,
)
from byteleap.store import WorkerState as StoredState
from byteleap.validator.miner_client import MinerCallError, MinerClient
from byteleap.validator.outcome import (
    status_for_call_failure,
    status_of_verdict,
    worker_seconds,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundParams:
    n: int = 2048
    profile: Profile = Profile.CPU_F64
    gpu_n: int = 32768  # for workers that report a GPU
    gpu_profile: Profile = Profile.CUDA_F16
    ttl_s: float = 60.0  # (param) from issue to the commitment's deadline
    max_workers_per_miner: int = 100  # (param)
    concurrency_per_miner: int = 8
    rows: int = 8  # s
    cols: int = 32  # t
    call_timeout_s: float = 30.0
    max_rtt_credit_s: float = 0.05  # (param) most network time taken off a commitment's time

    def challenge_for(self, worker: WorkerView) -> tuple[int, Profile]:
        """A worker that reports a GPU is measured on it; any other on its CPU."""
        return (self.gpu_n, self.gpu_profile) if worker.hardware.gpus else (self.n, self.profile)


@dataclass(frozen=True)
class ProtocolResult:
    """How far one challenge got, and what was measured on the way."""

    status: ChallengeStatus
    reason: str | None
    root: str | None = None
    commit_s: float | None = None
    compute_s: float | None = None
    throughput: float | None = None


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

    def count(self, status: ChallengeStatus) -> int:
        return sum(1 for o in self.outcomes if o.status is status)


def worker_signature_check(worker: WorkerView) -> SignatureCheck:
    key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(worker.public_key))

    def check(payload: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, payload)
        except InvalidSignature:
            return False
        return True

    return check


def _hardware(worker: WorkerView) -> WorkerHardware:
    hw = worker.hardware
    return WorkerHardware(
        cpu_model=hw.cpu.model,
        cpu_cores=hw.cpu.cores_logical,
        ram_mb=hw.memory.total_mib,
        disk_mb=int(hw.disk.total_gib * 1024),
        gpus=tuple(
            GpuInfo(slot=g.index, model=g.model, vram_mb=g.vram_mib, uuid=g.uuid) for g in hw.gpus
        ),
    )


class RoundRunner:
    def __init__(
        self,
        wallet: WalletLike,
        chain: ChainPort,
        store: Store,
        params: RoundParams,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.wallet = wallet
        self.hotkey = resolve_signer(wallet, role="hotkey").ss58_address
        self.chain = chain
        self.store = store
        self.params = params
        self.clock = clock
        self.replay_guard = ReplayGuard()

    async def run_round(self) -> RoundReport:
        report = RoundReport(started_at=self.clock())
        with metrics.ROUND_SECONDS.time():
            return await self._run_round(report)

    async def _run_round(self, report: RoundReport) -> RoundReport:
        metagraph = await self.chain.metagraph()
        miners = [
            n
            for n in metagraph.neurons
            if n.hotkey != self.hotkey and n.axon_ip and n.axon_port and n.certificate
        ]
        report.miners = len(miners)
        results = await asyncio.gather(*(self._miner(n) for n in miners), return_exceptions=True)
        for neuron, result in zip(miners, results, strict=True):
            if isinstance(result, MinerCallError):
                report.unreachable[neuron.hotkey] = result.reason
                metrics.MINERS_UNREACHABLE.labels(result.reason).inc()
            elif isinstance(result, BaseException):
                raise result  # store outages and bugs must not pass as a miner's fault
            else:
                report.outcomes.extend(result)
        log.info(
            "round done",
            extra={
                "miners": report.miners,
                "passed": report.count(ChallengeStatus.PASSED),
                "failed": len(report.outcomes) - report.count(ChallengeStatus.PASSED),
                "unreachable": len(report.unreachable),
            },
        )
        return report

    async def _miner(self, neuron: NeuronInfo) -> list[ChallengeOutcome]:
        async with MinerClient(self.wallet, neuron, timeout_s=self.params.call_timeout_s) as client:
            rtt = await client.ping()
            listing = await client.workers()
            miner_id, ids = await self._record_listing(neuron, listing)
            idle = [w for w in listing.workers if w.state is WorkerState.IDLE]
            idle = idle[: self.params.max_workers_per_miner]
            gate = asyncio.Semaphore(self.params.concurrency_per_miner)

            async def one(worker: WorkerView) -> ChallengeOutcome:
                async with gate:
                    return await self._challenge(
                        client, neuron, worker, ids[worker.worker_id], miner_id, rtt
                    )

            return list(await asyncio.gather(*(one(w) for w in idle)))

    async def _record_listing(
        self, neuron: NeuronInfo, listing: WorkerList
    ) -> tuple[int, dict[str, int]]:
        now = int(self.clock())
        axon = f"{neuron.axon_ip}:{neuron.axon_port}"
        async with self.store.session() as s:
            miner = await upsert_miner(s, neuron.hotkey, uid=neuron.uid, axon=axon, at=now)
            keys = [w.worker_id for w in listing.workers]
            ids = await upsert_workers(s, miner.id, keys, at=now)
            online = []
            for worker in listing.workers:
                wid = ids[worker.worker_id]
                await set_worker_hardware(s, wid, _hardware(worker))
                if worker.ip:
                    await record_worker_ip(s, wid, worker.ip, at=now)
                try:
                    await set_worker_state(s, wid, StoredState(worker.state.value), at=now)
                except IllegalTransition:
                    pass  # a snapshot can skip states; the miner's word is the current state
                # Leased and busy workers count as available: they are doing paid work.
                if worker.state is not WorkerState.OFFLINE:
                    online.append(wid)
            await mark_online(s, online, bucket_of(now))
        return miner.id, ids

    async def _challenge(
        self,
        client: MinerClient,
        neuron: NeuronInfo,
        worker: WorkerView,
        worker_db_id: int,
        miner_id: int,
        rtt: float,
    ) -> ChallengeOutcome:
        p = self.params
        gpu = worker.hardware.gpus[0].model if worker.hardware.gpus else None
        n, profile = p.challenge_for(worker)
        spec = issue_challenge(n, profile, now=self.clock(), ttl_s=p.ttl_s)
        async with self.store.session() as s:
            await record_challenge(
                s,
                NewChallenge(
                    id=spec.challenge_id,
                    worker_id=worker_db_id,
                    miner_id=miner_id,
                    profile=str(profile),
                    n=n,
                    seed=spec.seed.hex(),
                    issued_at=int(spec.issued_at),
                    deadline_at=int(spec.deadline),
                    claimed_gpu=gpu,
                    rtt_s=rtt,
                ),
            )
        result = await self._run_protocol(client, worker, spec, rtt)
        async with self.store.session() as s:
            if result.root is not None:
                await advance_challenge(
                    s,
                    spec.challenge_id,
                    ChallengeStatus.COMMITTED,
                    at=int(self.clock()),
                    root=result.root,
                    commit_s=result.commit_s,
                    compute_s=result.compute_s,
                )
            await advance_challenge(
                s,
                spec.challenge_id,
                result.status,
                at=int(self.clock()),
                failure_reason=result.reason,
                throughput=result.throughput,
            )
        metrics.CHALLENGES.labels(result.status.value).inc()
        elapsed = max(0.0, self.clock() - spec.issued_at)
        metrics.CHALLENGE_SECONDS.labels(result.status.value).observe(elapsed)
        return ChallengeOutcome(
            neuron.hotkey, worker.worker_id, result.status, result.reason, result.throughput
        )

    async def _run_protocol(
        self, client: MinerClient, worker: WorkerView, spec: ChallengeSpec, rtt: float
    ) -> ProtocolResult:
        sent = time.perf_counter()
        try:
            commitment = await client.start_challenge(worker.worker_id, spec)
        except MinerCallError as exc:
            return ProtocolResult(status_for_call_failure(exc.reason), exc.reason)
        received_at = self.clock()
        commit_s = worker_seconds(
            time.perf_counter() - sent, rtt, max_rtt_credit_s=self.params.max_rtt_credit_s
        )
        committed = ProtocolResult(
            ChallengeStatus.COMMITTED,
            None,
            root=commitment.root.hex(),
            commit_s=commit_s,
            compute_s=commitment.compute_s,
        )
        request = draw_reveal(spec, commitment, s=self.params.rows, t=self.params.cols)
        try:
            reveal = await client.reveal(request, spec.n)
        except MinerCallError as exc:
            return replace(committed, status=status_for_call_failure(exc.reason), reason=exc.reason)
        verdict = verify(
            spec,
            commitment,
            request,
            reveal,
            now=received_at,
            verify_signature=worker_signature_check(worker),
            replay_guard=self.replay_guard,
        )
        status = status_of_verdict(verdict)
        if verdict.ok:
            return replace(committed, status=status, throughput=2.0 * spec.n**3 / commit_s)
        log.warning(
            "challenge failed",
            extra={"worker": worker.worker_id, "reason": verdict.reason, "detail": verdict.detail},
        )
        return replace(committed, status=status, reason=verdict.reason.value)
