"""The worker process: one WebSocket link to its miner, challenges solved off the loop.

Connects over TLS with the miner's key pinned (from the enrollment token, then
from the saved enrollment), enrolls once or says hello with its own key, sends
heartbeats, solves challenges in a thread so heartbeats keep flowing, answers
reveals, and reconnects with exponential backoff when the link drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import websockets
from pydantic import BaseModel

from byteleap import metrics
from byteleap.config import JobLogSettings, WorkerInputSettings, WorkerVmSettings
from byteleap.net.enrollment import EnrollmentToken, hello_payload
from byteleap.net.errors import NetError, PinMismatch
from byteleap.net.heartbeat import sign_heartbeat
from byteleap.net.messages import (
    MAX_WS_MESSAGE_BYTES,
    AskReveal,
    AuthNonce,
    CancelJob,
    ChallengeAborted,
    Committed,
    Enroll,
    Heartbeat,
    Hello,
    JobRequest,
    LeaseProbed,
    NetworkDown,
    NetworkPeers,
    NetworkUp,
    ProbeLease,
    Refused,
    Revealed,
    RunChallenge,
    RunJob,
    Welcome,
    parse_miner_message,
)
from byteleap.net.tls import pinned_context_for
from byteleap.proof import Solution, answer_reveal, commit
from byteleap.proof.cheats import refuses
from byteleap.protocol.exec_frames import ExecAck, ExecResize, ExecStart, ExecStdin, ExecStop
from byteleap.protocol.hardware import HardwareInventory
from byteleap.protocol.vm_lease import StartVm, StopVm
from byteleap.worker.access import ExecRunner
from byteleap.worker.behaviours import (
    DEVICE_LOCK_FILE,
    Behaviour,
    GaveUp,
    RevealRefused,
    wrong_results,
)
from byteleap.worker.executors.process_cgroup import job_cgroups
from byteleap.worker.gpu_choice import GpuChoice, host_indices
from byteleap.worker.hardware_probe import probe_hardware
from byteleap.worker.identity import Enrollment, IdentityMissing, WorkerKey, load_or_create_key
from byteleap.worker.job_executors import ExecutorSetting
from byteleap.worker.jobs import JobRunner, Send, refusal
from byteleap.worker.networks import LeaseNetworkLinks
from byteleap.worker.vm_leases import VmLeases

#: A miner message's handler: the work to run as a task, or None when it is done already.
Handler = Callable[[Any], Coroutine[Any, Any, None] | None]
log = logging.getLogger(__name__)

MAX_KEPT_SOLUTIONS = 4


class Refusal(Exception):
    """The miner refused this worker; retrying will not help."""


def drop_device_products(solutions: dict[str, Solution]) -> None:
    """Forget unrevealed products that lie on a GPU before the next challenge: each is n²
    words of device memory (4 GB at n = 32768), and a few of them beside the next challenge's
    matrices would not fit a 24 GB card. A challenge runs only on an idle worker, and its
    reveal follows its commitment, so an older one is no longer going to be asked for."""
    for challenge_id in [c for c, s in solutions.items() if s.product.device != "cpu"]:
        del solutions[challenge_id]


def _log_failure(task: asyncio.Task[None]) -> None:
    """A handler's task that raised: said in the log, never dropped unseen (the job runner
    reports its own failures to the miner; this catches any other handler's)."""
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("a miner message's handler failed", exc_info=exc)


@dataclass
class WorkerNode:
    miner_url: str
    home: Path
    token: str | None = None
    behaviour: Behaviour = Behaviour.HONEST
    backend: str = "auto"
    max_backoff_s: float = 30.0
    executor: ExecutorSetting = "process"
    vm: WorkerVmSettings = field(default_factory=WorkerVmSettings)
    job_logs: JobLogSettings = field(default_factory=JobLogSettings)
    inputs: WorkerInputSettings = field(default_factory=WorkerInputSettings)
    key: WorkerKey = field(init=False)
    solutions: dict[str, Solution] = field(default_factory=dict)
    # challenge id -> the rows a refuse-reveal worker computed (and will reveal)
    answerable: dict[str, frozenset[int]] = field(default_factory=dict)
    # The lock file a multiplexing worker takes turns on (default: one in its own home).
    device_lock: Path | None = None
    device_pace_s: float = 0.0
    jobs: JobRunner = field(init=False)
    # Where other members reach this worker's private-network links (None: as the miner sees it).
    network_host: str | None = None
    # The host's GPUs this worker serves (`byteleap worker --gpu`); default: all of them.
    gpus: GpuChoice = field(default_factory=GpuChoice)
    networks: LeaseNetworkLinks = field(init=False)
    access: ExecRunner = field(init=False)
    worker_id: str | None = field(default=None, init=False)  # the miner's name for it, once told

    def __post_init__(self) -> None:
        self.key = load_or_create_key(self.home)
        self.networks = LeaseNetworkLinks(public_host=self.network_host)
        self.jobs = JobRunner(
            self.home,
            executor=self.executor,
            log_caps=self.job_logs,
            key=self.key,
            inputs=self.inputs,
        )
        self.vms = VmLeases(self.vm, self.home)
        self.hardware: HardwareInventory | None = None
        self.access = ExecRunner(self.home, gpu_env=self.gpus.environment())

    def _pin(self) -> str:
        enrollment = Enrollment.load(self.home)
        if enrollment is not None:
            return enrollment.miner_public_key
        if self.token is None:
            raise IdentityMissing("not enrolled yet and no --token given")
        return EnrollmentToken.decode(self.token).miner_public_key

    async def run_forever(self) -> None:
        if self.executor == "process":  # say now, not at the first job, if jobs get no cgroups
            await asyncio.to_thread(job_cgroups)
        backoff = 0.5
        while True:
            started = time.monotonic()
            try:
                await self.run_once()
            except Refusal as exc:
                log.error("miner refused this worker", extra={"why": str(exc)})
                raise
            except (OSError, websockets.WebSocketException, TimeoutError, NetError) as exc:
                # A pin mismatch is retried too: the real miner may come back on that port.
                level = logging.ERROR if isinstance(exc, PinMismatch) else logging.WARNING
                log.log(level, "link to miner dropped", extra={"why": repr(exc)})
            if time.monotonic() - started > 30:
                backoff = 0.5  # the link was healthy for a while; start over
            await asyncio.sleep(backoff * (0.5 + random.random()))
            backoff = min(self.max_backoff_s, backoff * 2)

    async def run_once(self) -> None:
        url = urlparse(self.miner_url)
        host, port = url.hostname or "127.0.0.1", url.port or 443
        context = await asyncio.to_thread(
            pinned_context_for, host, port, bytes.fromhex(self._pin())
        )
        async with websockets.connect(
            self.miner_url, ssl=context, max_size=MAX_WS_MESSAGE_BYTES, open_timeout=10
        ) as socket:
            welcome = await self._introduce(socket)
            heartbeats = asyncio.create_task(self._heartbeat(socket, welcome.heartbeat_s))
            metrics.WORKER_CONNECTED.set(1)
            try:
                await self._serve(socket)
            finally:
                metrics.WORKER_CONNECTED.set(0)
                await self.vms.stop_all()  # the miner ends every lease of a worker it lost
                heartbeats.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeats
                await self.networks.down_all()  # the miner ended every lease here

    async def _introduce(self, socket: websockets.ClientConnection) -> Welcome:
        nonce = parse_miner_message(await socket.recv())
        if not isinstance(nonce, AuthNonce):
            raise Refusal("miner did not start with a nonce")
        hardware = await self._probe()
        enrollment = Enrollment.load(self.home)
        first: Enroll | Hello
        if enrollment is None:
            assert self.token is not None
            first = Enroll(token=self.token, public_key=self.key.public_hex, hardware=hardware)
        else:
            signature = self.key.sign(hello_payload(nonce.nonce, nonce.miner_hotkey))
            first = Hello(
                worker_id=enrollment.worker_id, signature=signature.hex(), hardware=hardware
            )
        await socket.send(first.model_dump_json())
        answer = parse_miner_message(await socket.recv())
        if isinstance(answer, Refused):
            raise Refusal(answer.reason)
        if not isinstance(answer, Welcome):
            raise Refusal(f"unexpected answer {answer.type}")
        if enrollment is None:
            Enrollment(answer.worker_id, self._pin()).save(self.home)
        self.worker_id = answer.worker_id
        log.info("connected to miner", extra={"worker": answer.worker_id})
        return answer

    async def _probe(self) -> HardwareInventory:
        probed = await asyncio.to_thread(probe_hardware)
        hardware = self.behaviour.claim(self.gpus.inventory(probed), self.key.public_hex)
        why_not = await asyncio.to_thread(self.vms.unavailable)
        if why_not is not None and self.vm.enabled:
            log.warning("vm leases enabled but unavailable", extra={"why": why_not})
        hardware = hardware.model_copy(update={"vm_leases": why_not is None})
        self.hardware = hardware
        self.jobs.gpu_model = hardware.gpus[0].model if hardware.gpus else None
        return hardware

    async def _heartbeat(self, socket: websockets.ClientConnection, every_s: float) -> None:
        while True:
            await socket.send(Heartbeat(sent_at=time.time()).model_dump_json())
            await asyncio.sleep(every_s)

    async def _serve(self, socket: websockets.ClientConnection) -> None:
        try:
            await self._serve_messages(socket)
        finally:  # nobody is left to see a lease session's output
            await self.access.stop_all()

    async def _serve_messages(self, socket: websockets.ClientConnection) -> None:
        tasks: set[asyncio.Task[None]] = set()
        handlers = self._handlers(socket)
        async for raw in socket:
            message = parse_miner_message(raw)
            if isinstance(message, Refused):
                raise Refusal(message.reason)
            handle = handlers.get(type(message))
            work = handle(message) if handle is not None else None
            if work is not None:
                task = asyncio.create_task(work)
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                task.add_done_callback(_log_failure)

    def _handlers(self, socket: websockets.ClientConnection) -> dict[type[BaseModel], Handler]:
        """One handler per message type the miner sends once this worker is admitted: each
        returns the work to run as a task, or None when it did all there was to do."""
        send = socket.send
        if self.behaviour is Behaviour.WRONG_OUTPUT:
            job_send = wrong_results(socket.send)
        else:
            job_send = send

        def exec_start(message: ExecStart) -> Coroutine[Any, Any, None]:
            self.access.begin(message)  # its stdin may come before the program is up
            return self.access.start(message, send)

        return {
            RunChallenge: lambda m: self._answer(socket, m),
            AskReveal: lambda m: self._answer(socket, m),
            StartVm: lambda m: self._vm(socket, m),
            StopVm: lambda m: self._vm(socket, m),
            RunJob: lambda m: self._run_job(m.job, job_send),
            ProbeLease: lambda m: self._answer_probe(socket, m),
            CancelJob: lambda m: self.jobs.cancel(m.job_id),
            NetworkUp: lambda m: self.networks.up(m, send),
            NetworkPeers: self.networks.apply,
            NetworkDown: self.networks.down,
            ExecStart: exec_start,
            ExecStdin: self.access.stdin,
            ExecResize: self.access.resize,
            ExecStop: lambda m: self.access.stop(m.session or ""),
            ExecAck: self.access.ack,
        }

    async def _run_job(self, job: JobRequest, send: Send) -> None:
        """Run ``job`` with its device indices (positions in this worker's report) made the
        host's NVML indices, which is what its executor hands on (see ``gpu_choice``)."""
        if job.spec.gpus:
            reported = self.hardware.gpus if self.hardware is not None else []
            try:
                devices = host_indices(job.spec.gpus, reported)
            except ValueError as exc:
                await send(refusal(job.job_id, exc).model_dump_json())
                return
            job = job.model_copy(update={"spec": job.spec.model_copy(update={"gpus": devices})})
        await self.jobs.run(job, send)

    async def _answer_probe(self, socket: websockets.ClientConnection, probe: ProbeLease) -> None:
        """Answering at all shows this worker's loop and link work; the jobs it runs on the
        lease are named so the gateway can see them. The verdict is signed with this
        worker's key over the prober's nonce: the prober takes no other word for it."""
        if self.behaviour is Behaviour.HANG:
            return
        alive, detail = True, f"{len(self.jobs.running)} jobs running"
        if (vm := await self.vms.probe(probe.lease_id)) is not None:  # a vm lease: is it up?
            alive, detail = vm
        heartbeat = None
        if probe.nonce is not None and self.worker_id is not None:
            heartbeat = sign_heartbeat(
                self.key.sign,
                lease_id=probe.lease_id,
                worker_id=self.worker_id,
                nonce=probe.nonce,
                alive=alive,
                signed_at_ms=int(time.time() * 1000),
            )
        answer = LeaseProbed(
            probe_id=probe.probe_id, alive=alive, detail=detail, heartbeat=heartbeat
        )
        await socket.send(answer.model_dump_json())

    async def _vm(self, socket: websockets.ClientConnection, message: StartVm | StopVm) -> None:
        if isinstance(message, StopVm):
            await self.vms.stop(message.lease_id, socket.send)
            return
        hardware = self.hardware if self.hardware is not None else await self._probe()
        await self.vms.start(message, hardware, socket.send)

    async def _answer(
        self, socket: websockets.ClientConnection, message: RunChallenge | AskReveal
    ) -> None:
        if self.behaviour is Behaviour.HANG:
            return
        try:
            if isinstance(message, RunChallenge):
                drop_device_products(self.solutions)
                started = time.perf_counter()
                lock = self.device_lock or self.home / DEVICE_LOCK_FILE
                solved = await asyncio.to_thread(
                    self.behaviour.solve, message.spec, self.backend, lock, self.device_pace_s
                )
                solution = solved.solution
                self.solutions[message.spec.challenge_id] = solution
                if solved.answerable is not None:
                    self.answerable[message.spec.challenge_id] = solved.answerable
                while len(self.solutions) > MAX_KEPT_SOLUTIONS:
                    # Unrevealed products are large; the oldest is the least likely asked.
                    oldest = next(iter(self.solutions))
                    del self.solutions[oldest]
                    self.answerable.pop(oldest, None)
                commitment = commit(solution, self.key.sign)
                metrics.WORKER_SOLVE_SECONDS.observe(time.perf_counter() - started)
                await socket.send(Committed(commitment=commitment).model_dump_json())
                metrics.WORKER_CHALLENGES.labels("committed").inc()
            else:
                cid = message.request.challenge_id
                solution = self.solutions.pop(cid)
                answerable = self.answerable.pop(cid, None)
                if answerable is not None and refuses(message.request, answerable):
                    # A refuse-reveal worker: a refusal instead of a row it never computed.
                    raise RevealRefused("asked for rows it did not compute")
                reveal = answer_reveal(solution, message.request)
                await socket.send(Revealed(reveal=reveal).model_dump_json())
                metrics.WORKER_CHALLENGES.labels("revealed").inc()
        except Exception as exc:  # report instead of leaving the validator waiting
            cid = (
                message.spec.challenge_id
                if isinstance(message, RunChallenge)
                else message.request.challenge_id
            )
            if isinstance(exc, GaveUp):  # a cheat's choice, not a fault
                log.warning("challenge given up", extra={"challenge": cid, "why": str(exc)})
            else:
                log.exception("challenge failed", extra={"challenge": cid})
            metrics.WORKER_CHALLENGES.labels("aborted").inc()
            with contextlib.suppress(Exception):
                aborted = ChallengeAborted(challenge_id=cid, reason=f"{type(exc).__name__}")
                await socket.send(aborted.model_dump_json())
