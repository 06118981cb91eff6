"""The miner's state while it runs: registry, ledger, live links, identity.

HTTP and WebSocket handlers (`miner.service`) are thin; what they do to the
workers is here, so it can be reasoned about without FastAPI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from byteleap import metrics
from byteleap.errors import ByteleapError
from byteleap.miner.challenge_batches import BatchBook
from byteleap.miner.errors import (
    ImpossibleHardware,
    LeaseRefused,
    TokenRejected,
    UnknownChallenge,
    WorkerUnavailable,
)
from byteleap.miner.jobs import CANCEL_GRACE_S, JobBook, MinerJob
from byteleap.miner.leases import LeaseBook, MinerLease
from byteleap.miner.ledger import MinerLedger
from byteleap.miner.links import HangUp, Send, WorkerLink
from byteleap.miner.registry import WorkerEntry, WorkerRegistry
from byteleap.net.enrollment import EnrollmentToken, hello_payload
from byteleap.net.errors import MalformedToken
from byteleap.net.messages import (
    CancelJob,
    Enroll,
    Hello,
    JobEnded,
    JobOutput,
    JobRefused,
    JobRequest,
    JobServing,
    JobStatus,
    LeaseRequest,
    LeaseStatus,
    RunJob,
    WorkerState,
)
from byteleap.proof import ChallengeSpec, Commitment, Reveal, RevealRequest
from byteleap.protocol.gpu_models import hardware_claim_problem
from byteleap.protocol.hardware import HardwareInventory, choose_profile
from byteleap.protocol.vm_lease import StartVm, StopVm

log = logging.getLogger(__name__)

#: How long after its deadline a committed challenge waits for its reveal before the worker is
#: idle again (the validator reveals within its round, far sooner).
REVEAL_GRACE_S = 30.0


def new_worker_id() -> str:
    return "w-" + secrets.token_hex(8)


def _profile(hardware: HardwareInventory) -> str:
    return choose_profile(hardware, torch_cuda_available=bool(hardware.gpus))


@dataclass
class MinerNode:
    hotkey: str
    tls_public_key: str
    ledger: MinerLedger
    heartbeat_s: float
    missed_heartbeats: int
    clock: Callable[[], float] = time.time
    registry: WorkerRegistry = field(default_factory=WorkerRegistry)
    links: dict[str, WorkerLink] = field(default_factory=dict)
    # challenge id -> (worker id, when to give up on the reveal), between commitment and reveal
    active: dict[str, tuple[str, float]] = field(default_factory=dict)
    jobs: JobBook = field(default_factory=JobBook)
    leases: LeaseBook = field(default_factory=LeaseBook)

    def __post_init__(self) -> None:
        self.batches = BatchBook(self.challenge, self.clock)
        for entry in self.ledger.load():
            self.registry.add(entry)

    # -- worker links -----------------------------------------------------------------

    def admit(self, message: Enroll | Hello, nonce: str, ip: str) -> WorkerEntry:
        """Check an enrollment or a hello; returns the (now online) worker.

        A worker whose hardware cannot be real (``gpu_models.hardware_claim_problem``: an
        unknown GPU, more VRAM than its model has, absurd cores or memory) is refused before
        its token is spent: an honest miner does not list a claim it knows to be false.
        """
        now = self.clock()
        problem = hardware_claim_problem(message.hardware)
        if problem is not None:
            raise ImpossibleHardware(f"worker hardware refused: {problem}", problem=problem)
        if isinstance(message, Enroll):
            return self._enroll(message, ip, now)
        entry = self.registry.get(message.worker_id)
        if entry.revoked or self.ledger.is_revoked(entry.worker_id):
            raise WorkerUnavailable(f"worker {entry.worker_id} is revoked", reason="revoked")
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(entry.public_key))
        try:
            key.verify(bytes.fromhex(message.signature), hello_payload(nonce, self.hotkey))
        except InvalidSignature:
            raise TokenRejected("hello signature does not verify", reason="bad_signature") from None
        if entry.worker_id in self.links:
            raise WorkerUnavailable(f"worker {entry.worker_id} is already connected")
        if self.registry.connect(
            entry.worker_id, message.hardware, _profile(message.hardware), ip, now
        ):
            log.warning("worker ip changed", extra={"worker": entry.worker_id, "ip": ip})
        self._persist(entry, ip_changed=True)
        return entry

    def _enroll(self, message: Enroll, ip: str, now: float) -> WorkerEntry:
        try:
            token = EnrollmentToken.decode(message.token)
        except MalformedToken as exc:
            raise TokenRejected(str(exc)) from None
        if token.miner_public_key != self.tls_public_key:
            raise TokenRejected("token was issued by another miner")
        entry = WorkerEntry(
            worker_id=new_worker_id(),
            public_key=message.public_key,
            hardware=message.hardware,
            profile=_profile(message.hardware),
            state=WorkerState.OFFLINE,
            last_seen=now,
            ip=None,
        )
        self.ledger.enroll(token.secret, entry, now)
        self.registry.add(entry)
        self.registry.connect(entry.worker_id, message.hardware, entry.profile, ip, now)
        self._persist(entry, ip_changed=True)
        log.info("worker enrolled", extra={"worker": entry.worker_id, "ip": ip})
        return entry

    def attach(self, worker_id: str, send: Send, hang_up: HangUp | None = None) -> WorkerLink:
        link = WorkerLink(worker_id, send, hang_up)
        self.links[worker_id] = link
        return link

    async def detach(self, worker_id: str, why: str) -> None:
        link = self.links.pop(worker_id, None)
        if link is not None:
            await link.close(why)
        for job_id in self.jobs.lose_worker(worker_id, f"worker lost: {why}"):
            log.warning("job lost with its worker", extra={"job": job_id, "worker": worker_id})
        lease = self.leases.on_worker(worker_id)
        if lease is not None:
            # No receipt will cover time after this: the renter lost the machine.
            self.leases.end(lease, self.clock(), f"worker lost: {why}")
            log.warning("lease lost with its worker", extra={"worker": worker_id})
        entry = self.registry.get(worker_id)
        if entry.state is not WorkerState.OFFLINE:
            self.registry.disconnect(worker_id)
        self._persist(entry)
        log.info("worker offline", extra={"worker": worker_id, "why": why})

    def heartbeat(self, worker_id: str) -> bool:
        """Record a heartbeat; False when the worker has been revoked meanwhile."""
        if self.ledger.is_revoked(worker_id):
            return False
        self.registry.heartbeat(worker_id, self.clock())
        return True

    async def expire(self) -> list[str]:
        """Hang up on workers silent for too many heartbeats and mark them offline."""
        silent = self.registry.silent(self.clock(), self.heartbeat_s, self.missed_heartbeats)
        for worker_id in silent:
            link = self.links.get(worker_id)
            if link is not None:
                # A frozen worker keeps its socket open; close it so that, if it wakes
                # up, it has to reconnect and say hello again.
                await link.hang_up()
            await self.detach(worker_id, "missed heartbeats")
        now = self.clock()
        for challenge_id, (worker_id, give_up_at) in list(self.active.items()):
            if give_up_at < now:
                del self.active[challenge_id]
                self._release(worker_id)
        return silent

    async def expire_forever(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s / 2)
            await self.expire()
            self.end_due_leases()
            self.end_unconfirmed_cancels()

    # -- leases -----------------------------------------------------------------------

    def start_lease(self, request: LeaseRequest, gateway: str) -> LeaseStatus:
        link = self._link(request.worker_id)  # offline or unknown workers cannot be leased
        existing = self.leases.on_worker(request.worker_id)
        if existing is not None and existing.request == request and existing.gateway == gateway:
            return existing.status()
        entry = self.registry.get(request.worker_id)
        if entry.state is not WorkerState.IDLE:
            raise WorkerUnavailable(f"worker {request.worker_id} is {entry.state.value}, not idle")
        if request.vm is not None and not entry.hardware.vm_leases:
            raise WorkerUnavailable(f"worker {request.worker_id} hosts no VM leases")
        lease = self.leases.start(request, gateway, self.clock())
        if request.vm is not None:
            try:
                link.post(StartVm(lease_id=request.lease_id, vm=request.vm).model_dump_json())
            except ByteleapError:
                self.leases.end(lease, self.clock(), "the worker could not be asked for the VM")
                raise
        self.registry.transition(request.worker_id, WorkerState.LEASED)
        log.info("worker leased", extra={"worker": request.worker_id, "until": request.ends_at})
        return lease.status()

    def release_lease(self, lease_id: str, gateway: str, detail: str = "released") -> LeaseStatus:
        lease = self.leases.get(lease_id, gateway)
        self._end_lease(lease, detail)
        return lease.status()

    def end_due_leases(self) -> None:
        for lease in self.leases.due(self.clock()):
            self._end_lease(lease, "expired")

    def _end_lease(self, lease: MinerLease, detail: str) -> None:
        was_active = lease.active
        self.leases.end(lease, self.clock(), detail)
        link = self.links.get(lease.request.worker_id)
        if was_active and lease.request.vm is not None and link is not None:
            # A worker that misses this (gone, outbox full) removes its VMs when its link drops.
            with contextlib.suppress(ByteleapError):
                link.post(StopVm(lease_id=lease.request.lease_id).model_dump_json())
        entry = self.registry.get(lease.request.worker_id)
        if entry.state is WorkerState.LEASED:
            self.registry.transition(entry.worker_id, WorkerState.IDLE)

    def _persist(self, entry: WorkerEntry, ip_changed: bool = False) -> None:
        self.ledger.save(entry)
        if ip_changed and entry.ip is not None:
            last = entry.ip_history[-1] if entry.ip_history else None
            if last is not None and last[0] == entry.ip:
                self.ledger.record_ip(entry.worker_id, entry.ip, last[1])

    # -- validator requests -----------------------------------------------------------

    def _link(self, worker_id: str) -> WorkerLink:
        link = self.links.get(worker_id)
        if link is None:
            self.registry.get(worker_id)  # unknown ids raise UnknownWorker first
            raise WorkerUnavailable(f"worker {worker_id} is offline", worker_id=worker_id)
        return link

    async def challenge(self, worker_id: str, spec: ChallengeSpec) -> Commitment:
        link = self._link(worker_id)
        self.registry.transition(worker_id, WorkerState.CHALLENGED)
        timeout = max(0.1, spec.deadline - self.clock())
        try:
            commitment = await link.commitment(spec, timeout)
        except BaseException:
            self._release(worker_id)
            raise
        # A validator that never asks for the reveal (it crashed, its round ended) must not
        # leave the worker challenged for good.
        self.active[spec.challenge_id] = (worker_id, spec.deadline + REVEAL_GRACE_S)
        return commitment

    async def reveal(self, request: RevealRequest, timeout_s: float) -> Reveal:
        pending = self.active.pop(request.challenge_id, None)
        if pending is None:
            raise UnknownChallenge(f"no committed challenge {request.challenge_id}")
        worker_id, _ = pending
        try:
            return await self._link(worker_id).reveal(request, timeout_s)
        finally:
            self._release(worker_id)

    # -- jobs -------------------------------------------------------------------------

    def submit_job(self, request: JobRequest, caller: str) -> JobStatus:
        """Start a job on an idle worker, or on the caller's leased worker when the request
        names the lease (idempotent for a repeated request)."""
        link = self._link(request.worker_id)
        existing = self.jobs.find(request.job_id)
        if existing is not None and existing.request == request:
            return existing.status()
        if request.lease_id is not None:
            lease = self.leases.get(request.lease_id, caller)
            if not lease.active or lease.request.worker_id != request.worker_id:
                raise LeaseRefused("the lease has ended or holds another worker")
        else:
            state = self.registry.get(request.worker_id).state
            if state is not WorkerState.IDLE:
                raise WorkerUnavailable(
                    f"worker {request.worker_id} is {state.value}, not idle",
                    worker_id=request.worker_id,
                )
        job, _ = self.jobs.start(request)
        try:
            if request.lease_id is None:  # a leased worker stays leased while it works
                self.registry.transition(request.worker_id, WorkerState.BUSY)
            link.post(RunJob(job=request).model_dump_json())
        except BaseException as exc:
            self.jobs.end(JobRefused(job_id=request.job_id, reason="not_started", detail=str(exc)))
            raise
        log.info("job started", extra={"job": request.job_id, "worker": request.worker_id})
        return job.status()

    def cancel_job(self, job_id: str) -> JobStatus:
        job = self.jobs.get(job_id)
        if not job.state.is_terminal:
            # Booked first: a worker that never answers (or cannot be told) is freed anyway.
            self.jobs.asked_to_cancel(job_id, self.clock() + CANCEL_GRACE_S)
            self._link(job.request.worker_id).post(CancelJob(job_id=job_id).model_dump_json())
        return job.status()

    def end_unconfirmed_cancels(self) -> None:
        for job in self.jobs.unconfirmed_cancels(self.clock()):
            log.warning("cancel never confirmed", extra={"job": job.request.job_id})
            self._job_done(job)

    def on_job_message(self, message: JobOutput | JobEnded | JobRefused) -> None:
        if isinstance(message, JobOutput):
            self.jobs.output(message)
            return
        job = self.jobs.end(message)
        if job is not None:
            self._job_done(job)

    def _job_done(self, job: MinerJob) -> None:
        metrics.JOBS_ENDED.labels(job.state.value).inc()
        worker_id = job.request.worker_id
        if self.registry.get(worker_id).state is WorkerState.BUSY:
            self.registry.transition(worker_id, WorkerState.IDLE)
        log.info("job ended", extra={"job": job.request.job_id, "state": job.state.value})

    def on_serving(self, worker_id: str, message: JobServing) -> None:
        """A replica's port: reachable at the worker's address as this miner sees it."""
        job = self.jobs.find(message.job_id)
        if job is None or job.request.worker_id != worker_id:
            log.warning("serving report for another worker's job", extra={"worker": worker_id})
            return
        ip = self.registry.get(worker_id).ip or "127.0.0.1"
        host = f"[{ip}]" if ":" in ip else ip
        self.jobs.serving(message.job_id, f"{host}:{message.port}")

    def _release(self, worker_id: str) -> None:
        entry = self.registry.get(worker_id)
        if entry.state is WorkerState.CHALLENGED:
            self.registry.transition(worker_id, WorkerState.IDLE)
