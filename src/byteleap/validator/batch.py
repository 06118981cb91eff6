"""One miner's part of a round: its batch of challenges, issued at once, then the reveals.

The batch is timed from its send to the reply that carries the last commitment, and every
pass is credited at its own work over that time (``scoring.credit``), so the order in which
the miner serves its workers cannot raise its credit. Every refusal, error or missing answer
after the batch is sent is that challenge's failure: only the validator's own crash abandons
a challenge (``store.close_open_challenges``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from byteleap.net.messages import (
    BatchItemResult,
    ChallengeBatch,
    ChallengeBatchReply,
    StartChallenge,
    WorkerList,
    WorkerView,
)
from byteleap.net.miner_client import MinerCallError
from byteleap.proof import (
    ChallengeSpec,
    Commitment,
    ReplayGuard,
    Reveal,
    RevealRequest,
    SignatureCheck,
    draw_reveal,
    verify,
)
from byteleap.scoring.credit import batch_credit
from byteleap.store import ChallengeStatus
from byteleap.validator.outcome import status_for_call_failure, status_of_verdict

log = logging.getLogger(__name__)


class MinerSession(Protocol):
    """The calls a round makes on one miner (``net.miner_client.MinerClient`` over mTLS)."""

    async def workers(self) -> WorkerList: ...

    async def start_batch(self, batch: ChallengeBatch) -> ChallengeBatchReply: ...

    async def batch_results(
        self, batch: ChallengeBatch, *, seen: int, wait_s: float
    ) -> ChallengeBatchReply: ...

    async def reveal(self, request: RevealRequest, n: int) -> Reveal: ...


@dataclass(frozen=True)
class PlannedChallenge:
    """A challenge written to the store and about to go out in its miner's batch."""

    worker: WorkerView
    worker_db_id: int
    spec: ChallengeSpec
    work_flops: float


@dataclass(frozen=True)
class ProtocolResult:
    """How far one challenge got, and what was measured on the way."""

    status: ChallengeStatus
    reason: str | None
    root: str | None = None
    commit_s: float | None = None
    compute_s: float | None = None
    throughput: float | None = None


def worker_signature_check(worker: WorkerView) -> SignatureCheck:
    """Checks signatures against the worker's listed key; a key that does not load (the
    miner's word) verifies nothing, so that worker's commitments fail as bad signatures."""
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(worker.public_key))
    except ValueError:
        return lambda payload, signature: False

    def check(payload: bytes, signature: bytes) -> bool:
        try:
            key.verify(signature, payload)
        except InvalidSignature:
            return False
        return True

    return check


#: Draws the reveal of a commitment that has arrived. The round's own is ``proof.draw_reveal``
#: from the CSPRNG; ``byteleap bench validator`` passes a seeded one its synthetic miners share.
DrawReveal = Callable[[ChallengeSpec, Commitment], RevealRequest]

#: The longest one results poll waits for news.
POLL_WAIT_S = 10.0
#: The shortest gap between two polls that brought nothing.
MIN_POLL_GAP_S = 0.02


@dataclass
class BatchRun:
    """Runs one miner's batch. ``results`` fills in as answers arrive, so a round that hits its
    deadline still knows how far each challenge got; ``credit`` then prices the passes."""

    session: MinerSession
    planned: Sequence[PlannedChallenge]
    rows: int
    cols: int
    replay_guard: ReplayGuard
    clock: Callable[[], float] = time.time
    draw: DrawReveal | None = None
    reveals_at_once: int = 0  # this miner's reveals in flight at once; 0: no bound
    round_slots: asyncio.Semaphore | None = None  # the round's, shared by every miner

    def __post_init__(self) -> None:
        self._miner_slots = (
            asyncio.Semaphore(self.reveals_at_once) if self.reveals_at_once > 0 else None
        )
        self.results: dict[str, ProtocolResult] = {}
        self.arrived_s: dict[str, float] = {}  # challenge id -> its commitment's arrival
        self.sent_at: float | None = None  # perf_counter at the batch's send
        self._by_id = {p.spec.challenge_id: p for p in self.planned}

    async def run(self, *, until: float) -> None:
        """Start the batch, collect its results and reveal each commitment as it arrives.
        ``until`` is the round's deadline on the event loop's clock."""
        loop = asyncio.get_running_loop()
        batch = ChallengeBatch(
            batch_id=secrets.token_hex(16),
            items=[StartChallenge(worker_id=p.worker.worker_id, spec=p.spec) for p in self.planned],
        )
        self.sent_at = time.perf_counter()
        async with asyncio.TaskGroup() as reveals:
            try:
                reply = await self.session.start_batch(batch)
                seen = 0
                while True:
                    arrived = time.perf_counter() - self.sent_at
                    for answer in reply.results:
                        commitment = self._take(answer, arrived)
                        if commitment is not None:
                            planned = self._by_id[answer.challenge_id]
                            reveals.create_task(self._reveal(planned, commitment))
                    seen += len(reply.results)
                    if reply.done:
                        break
                    if not reply.results:
                        # An honest miner returns empty only when the wait ran out; one that
                        # answers at once must not make the validator spin.
                        await asyncio.sleep(MIN_POLL_GAP_S)
                    wait = max(0.0, min(POLL_WAIT_S, until - loop.time()))
                    reply = await self.session.batch_results(batch, seen=seen, wait_s=wait)
            except MinerCallError as exc:
                log.warning("batch failed", extra={"reason": exc.reason, "detail": str(exc)})
                for p in self.planned:
                    self.results.setdefault(p.spec.challenge_id, _failed(exc.reason))

    def credit(self) -> None:
        """Price every pass at its work over the time to the last passing commitment."""
        passed = [c for c, r in self.results.items() if r.status is ChallengeStatus.PASSED]
        if not passed:
            return
        elapsed = max(self.arrived_s[c] for c in passed)
        works = [self._by_id[c].work_flops for c in passed]
        for cid, credited in zip(passed, batch_credit(works, elapsed), strict=True):
            self.results[cid] = replace(self.results[cid], throughput=credited)

    def _take(self, answer: BatchItemResult, arrived: float) -> Commitment | None:
        cid = answer.challenge_id
        if cid in self.results:
            return None  # answered already: a second answer changes nothing
        if answer.commitment is None:
            self.results[cid] = _failed(answer.error or "refused")
            return None
        self.arrived_s[cid] = arrived
        self.results[cid] = ProtocolResult(
            ChallengeStatus.COMMITTED,
            None,
            root=answer.commitment.root.hex(),
            commit_s=arrived,
            compute_s=answer.commitment.compute_s,
        )
        return answer.commitment

    async def _reveal(self, planned: PlannedChallenge, commitment: Commitment) -> None:
        received_at = self.clock()  # the commitment's arrival, before any wait for a slot
        async with _held(self._miner_slots), _held(self.round_slots):
            await self._reveal_now(planned, commitment, received_at)

    async def _reveal_now(
        self, planned: PlannedChallenge, commitment: Commitment, received_at: float
    ) -> None:
        spec = planned.spec
        committed = self.results[spec.challenge_id]
        if self.draw is not None:
            request = self.draw(spec, commitment)
        else:
            request = draw_reveal(spec, commitment, s=self.rows, t=self.cols)
        try:
            reveal = await self.session.reveal(request, spec.n)
        except MinerCallError as exc:
            log.warning(
                "reveal failed",
                extra={
                    "worker": planned.worker.worker_id,
                    "reason": exc.reason,
                    "detail": str(exc),
                },
            )
            self.results[spec.challenge_id] = replace(
                committed, status=status_for_call_failure(exc.reason), reason=exc.reason
            )
            return
        verdict = verify(
            spec,
            commitment,
            request,
            reveal,
            now=received_at,
            verify_signature=worker_signature_check(planned.worker),
            replay_guard=self.replay_guard,
        )
        if not verdict.ok:
            log.warning(
                "challenge failed",
                extra={
                    "worker": planned.worker.worker_id,
                    "reason": verdict.reason,
                    "detail": verdict.detail,
                },
            )
        reason = None if verdict.ok else verdict.reason.value
        self.results[spec.challenge_id] = replace(
            committed, status=status_of_verdict(verdict), reason=reason
        )


def _held(slots: asyncio.Semaphore | None) -> AbstractAsyncContextManager[object]:
    return slots if slots is not None else contextlib.nullcontext()


def _failed(reason: str) -> ProtocolResult:
    return ProtocolResult(status_for_call_failure(reason), reason)
