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
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from urllib.parse import urlparse

import websockets

from byteleap import metrics
from byteleap.config import WorkerVmSettings
from byteleap.miner.ledger import EnrollmentToken
from byteleap.miner.node import hello_payload
from byteleap.net.access import ExecStart, ExecStdin, ExecStop
from byteleap.net.errors import NetError, PinMismatch
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
    JobEnded,
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
    parse_worker_message,
)
from byteleap.net.tls import pinned_context_for
from byteleap.net.vm import StartVm, StopVm
from byteleap.proof import (
    ChallengeSpec,
    Cheat,
    Solution,
    answer_reveal,
    cheat_solution,
    commit,
    run_target,
    solve,
)
from byteleap.worker.access import ExecRunner
from byteleap.worker.hardware import HardwareInventory, probe_hardware
from byteleap.worker.identity import Enrollment, IdentityMissing, WorkerKey, load_or_create_key
from byteleap.worker.job_executors import ExecutorSetting
from byteleap.worker.jobs import JobRunner, Send
from byteleap.worker.networks import LeaseNetworkLinks
from byteleap.worker.vm_leases import VmLeases

log = logging.getLogger(__name__)

MAX_KEPT_SOLUTIONS = 4


class Behaviour(StrEnum):
    """How the worker treats challenges. Anything but honest exists for tests and
    `devnet --cheaters`, so everyone can watch cheats fail (see `proof.cheats`)."""

    HONEST = "honest"
    HANG = "hang"  # accepts challenges and lease probes and never answers
    # Honest at challenges, but returns a different result for every job it ran (a worker
    # that fakes work): the worker cannot tell which jobs are deterministic or re-executed,
    # so a real cheat would have to lie on all of them — output validation catches it.
    WRONG_OUTPUT = "wrong-output"
    LAZY = Cheat.LAZY.value
    PARTIAL = Cheat.PARTIAL.value
    LOW_PRECISION = Cheat.LOW_PRECISION.value
    SPARSE_ERROR = Cheat.SPARSE_ERROR.value

    def solve(self, spec: ChallengeSpec, backend: str) -> Solution:
        if self in (Behaviour.HONEST, Behaviour.WRONG_OUTPUT):
            return solve(spec, *run_target(spec, backend))
        return cheat_solution(Cheat(self.value), spec, random.Random())


def _wrong_results(send: Send) -> Send:
    """``send`` with every job result altered (stdout changed, as a faked run would)."""

    async def tampered(raw: str) -> None:
        message = parse_worker_message(raw)
        if isinstance(message, JobEnded):
            result = message.result
            wrong = result.model_copy(update={"stdout_tail": result.stdout_tail + "0\n"})
            raw = message.model_copy(update={"result": wrong}).model_dump_json()
        await send(raw)

    return tampered


class Refusal(Exception):
    """The miner refused this worker; retrying will not help."""


def drop_device_products(solutions: dict[str, Solution]) -> None:
    """Forget unrevealed products that lie on a GPU before the next challenge: each is n²
    words of device memory (4 GB at n = 32768), and a few of them beside the next challenge's
    matrices would not fit a 24 GB card. A challenge runs only on an idle worker, and its
    reveal follows its commitment, so an older one is no longer going to be asked for."""
    for challenge_id in [c for c, s in solutions.items() if s.product.device != "cpu"]:
        del solutions[challenge_id]


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
    key: WorkerKey = field(init=False)
    solutions: dict[str, Solution] = field(default_factory=dict)
    jobs: JobRunner = field(init=False)
    # Where other members reach this worker's private-network links (None: as the miner sees it).
    network_host: str | None = None
    networks: LeaseNetworkLinks = field(init=False)
    access: ExecRunner = field(init=False)

    def __post_init__(self) -> None:
        self.key = load_or_create_key(self.home)
        self.networks = LeaseNetworkLinks(public_host=self.network_host)
        self.jobs = JobRunner(self.home, executor=self.executor)
        self.vms = VmLeases(self.vm, self.home)
        self.hardware: HardwareInventory | None = None
        self.access = ExecRunner(self.home)

    def _pin(self) -> str:
        enrollment = Enrollment.load(self.home)
        if enrollment is not None:
            return enrollment.miner_public_key
        if self.token is None:
            raise IdentityMissing("not enrolled yet and no --token given")
        return EnrollmentToken.decode(self.token).miner_public_key

    async def run_forever(self) -> None:
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
        log.info("connected to miner", extra={"worker": answer.worker_id})
        return answer

    async def _probe(self) -> HardwareInventory:
        hardware = await asyncio.to_thread(probe_hardware)
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
        async for raw in socket:
            message = parse_miner_message(raw)
            if isinstance(message, Refused):
                raise Refusal(message.reason)
            task: asyncio.Task[None] | None = None
            if isinstance(message, RunChallenge | AskReveal):
                task = asyncio.create_task(self._answer(socket, message))
            elif isinstance(message, StartVm | StopVm):
                task = asyncio.create_task(self._vm(socket, message))
            elif isinstance(message, RunJob):
                send = socket.send
                if self.behaviour is Behaviour.WRONG_OUTPUT:
                    send = _wrong_results(socket.send)
                task = asyncio.create_task(self.jobs.run(message.job, send))
            elif isinstance(message, ProbeLease):
                task = asyncio.create_task(self._answer_probe(socket, message))
            elif isinstance(message, CancelJob):
                task = asyncio.create_task(self.jobs.cancel(message.job_id))
            elif isinstance(message, NetworkUp):
                task = asyncio.create_task(self.networks.up(message, socket.send))
            elif isinstance(message, NetworkPeers):
                task = asyncio.create_task(self.networks.apply(message))
            elif isinstance(message, NetworkDown):
                task = asyncio.create_task(self.networks.down(message))
            elif isinstance(message, ExecStart):
                self.access.begin(message)  # its stdin may come before the program is up
                task = asyncio.create_task(self.access.start(message, socket.send))
            elif isinstance(message, ExecStdin):
                self.access.stdin(message)
            elif isinstance(message, ExecStop):
                task = asyncio.create_task(self.access.stop(message.session or ""))
            if task is not None:
                tasks.add(task)
                task.add_done_callback(tasks.discard)

    async def _answer_probe(self, socket: websockets.ClientConnection, probe: ProbeLease) -> None:
        """Answering at all shows this worker's loop and link work; the jobs it runs on the
        lease are named so the gateway can see them."""
        if self.behaviour is Behaviour.HANG:
            return
        running = len(self.jobs.running)
        answer = LeaseProbed(probe_id=probe.probe_id, alive=True, detail=f"{running} jobs running")
        if (vm := await self.vms.probe(probe.lease_id)) is not None:  # a vm lease: is it up?
            answer = LeaseProbed(probe_id=probe.probe_id, alive=vm[0], detail=vm[1])
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
                solution = await asyncio.to_thread(self.behaviour.solve, message.spec, self.backend)
                self.solutions[message.spec.challenge_id] = solution
                while len(self.solutions) > MAX_KEPT_SOLUTIONS:
                    # Unrevealed products are large; the oldest is the least likely asked.
                    self.solutions.pop(next(iter(self.solutions)))
                commitment = commit(solution, self.key.sign)
                metrics.WORKER_SOLVE_SECONDS.observe(time.perf_counter() - started)
                await socket.send(Committed(commitment=commitment).model_dump_json())
                metrics.WORKER_CHALLENGES.labels("committed").inc()
            else:
                cid = message.request.challenge_id
                solution = self.solutions.pop(cid)
                reveal = answer_reveal(solution, message.request)
                await socket.send(Revealed(reveal=reveal).model_dump_json())
                metrics.WORKER_CHALLENGES.labels("revealed").inc()
        except Exception as exc:  # report instead of leaving the validator waiting
            cid = (
                message.spec.challenge_id
                if isinstance(message, RunChallenge)
                else message.request.challenge_id
            )
            log.exception("challenge failed", extra={"challenge": cid})
            metrics.WORKER_CHALLENGES.labels("aborted").inc()
            with contextlib.suppress(Exception):
                aborted = ChallengeAborted(challenge_id=cid, reason=f"{type(exc).__name__}")
                await socket.send(aborted.model_dump_json())
