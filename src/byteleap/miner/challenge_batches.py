"""The miner's side of a challenge batch: start every challenge at once, hand the results out
as they complete.

A validator starts a batch with one request and then long-polls its results; each poll
returns as soon as there is anything new. The validator times each commitment's arrival
itself, so a worker that hangs costs only its own challenge, not its neighbours' credit.
Batches are bounded per caller and forgotten once their results are all collected or their
deadline has long passed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from byteleap.errors import ByteleapError
from byteleap.miner.errors import TooManyBatches, UnknownBatch
from byteleap.net.messages import BatchItemResult, ChallengeBatch, ChallengeBatchReply
from byteleap.proof import ChallengeSpec, Commitment

log = logging.getLogger(__name__)

#: Open batches one caller may hold (a validator runs one round at a time).
MAX_OPEN_PER_CALLER = 4
#: How long a batch's results stay collectable after its last deadline.
KEEP_AFTER_DEADLINE_S = 120.0

StartOne = Callable[[str, ChallengeSpec], Awaitable[Commitment]]


@dataclass
class _Batch:
    caller: str
    batch: ChallengeBatch
    forget_at: float
    results: list[BatchItemResult] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return len(self.results) == len(self.batch.items)


class BatchBook:
    def __init__(self, start_one: StartOne, clock: Callable[[], float] = time.time) -> None:
        self._start_one = start_one
        self._clock = clock
        self._batches: dict[tuple[str, str], _Batch] = {}

    def start(self, caller: str, batch: ChallengeBatch) -> ChallengeBatchReply:
        """Start every challenge of ``batch`` now (idempotent for a repeated request)."""
        self._forget_expired()
        key = (caller, batch.batch_id)
        existing = self._batches.get(key)
        if existing is None:
            if sum(1 for c, _ in self._batches if c == caller) >= MAX_OPEN_PER_CALLER:
                raise TooManyBatches(f"{MAX_OPEN_PER_CALLER} batches already open")
            deadline = max(item.spec.deadline for item in batch.items)
            existing = _Batch(caller, batch, deadline + KEEP_AFTER_DEADLINE_S)
            self._batches[key] = existing
            existing.tasks = [
                asyncio.create_task(self._run(existing, item.worker_id, item.spec))
                for item in batch.items
            ]
        return self._reply(existing, 0)

    async def results(
        self, caller: str, batch_id: str, *, seen: int, wait_s: float
    ) -> ChallengeBatchReply:
        """Results from position ``seen`` on; waits up to ``wait_s`` for one when there is none."""
        entry = self._batches.get((caller, batch_id))
        if entry is None:
            raise UnknownBatch(f"no open batch {batch_id}")
        if len(entry.results) <= seen and not entry.done:
            entry.changed.clear()
            try:
                async with asyncio.timeout(wait_s):
                    await entry.changed.wait()
            except TimeoutError:
                pass
        reply = self._reply(entry, seen)
        if reply.done and seen + len(reply.results) >= len(entry.batch.items):
            del self._batches[(caller, batch_id)]
        return reply

    def close(self) -> None:
        for entry in self._batches.values():
            for task in entry.tasks:
                task.cancel()
        self._batches.clear()

    async def _run(self, entry: _Batch, worker_id: str, spec: ChallengeSpec) -> None:
        cid = spec.challenge_id
        try:
            commitment = await self._start_one(worker_id, spec)
            result = BatchItemResult(worker_id=worker_id, challenge_id=cid, commitment=commitment)
        except ByteleapError as exc:
            result = BatchItemResult(worker_id=worker_id, challenge_id=cid, error=exc.reason)
        except Exception:
            log.exception("challenge failed inside a batch", extra={"challenge": cid})
            result = BatchItemResult(worker_id=worker_id, challenge_id=cid, error="miner_error")
        entry.results.append(result)
        entry.changed.set()

    @staticmethod
    def _reply(entry: _Batch, seen: int) -> ChallengeBatchReply:
        return ChallengeBatchReply(
            batch_id=entry.batch.batch_id,
            seen=seen,
            results=entry.results[seen:],
            done=entry.done,
        )

    def _forget_expired(self) -> None:
        now = self._clock()
        for key in [k for k, b in self._batches.items() if b.forget_at < now]:
            for task in self._batches.pop(key).tasks:
                task.cancel()
