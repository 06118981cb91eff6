"""One live link per connected worker: an outbox, a sender task and pending replies.

Every request to a worker waits on its own future with its own timeout, and each
link has its own sender task, so a hung or slow worker only ever delays the
requests addressed to it — never the other workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from byteleap.miner.errors import WorkerLost, WorkerTimeout
from byteleap.net.messages import (
    AskReveal,
    ChallengeAborted,
    Committed,
    Revealed,
    RunChallenge,
)
from byteleap.proof import ChallengeSpec, Commitment, Reveal, RevealRequest

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
HangUp = Callable[[], Awaitable[None]]


class WorkerLink:
    def __init__(
        self, worker_id: str, send: Send, hang_up: HangUp | None = None, outbox_size: int = 64
    ) -> None:
        self.worker_id = worker_id
        self._send = send
        self._hang_up = hang_up
        self._outbox: asyncio.Queue[str] = asyncio.Queue(outbox_size)
        self._pending: dict[tuple[str, str], asyncio.Future[Commitment | Reveal]] = {}
        self._sender = asyncio.create_task(self._send_loop(), name=f"send-{worker_id}")
        self.closed = False

    async def _send_loop(self) -> None:
        while True:
            text = await self._outbox.get()
            try:
                await self._send(text)
            except Exception as exc:  # the socket is gone; the reader will notice too
                self.fail_all(f"send failed: {exc}")
                return

    async def _request(
        self, key: tuple[str, str], text: str, timeout_s: float
    ) -> Commitment | Reveal:
        if self.closed:
            raise WorkerLost(f"worker {self.worker_id} is not connected", worker_id=self.worker_id)
        if key in self._pending:
            raise WorkerTimeout(f"{key[0]} for {key[1]} already pending", reason="duplicate")
        future: asyncio.Future[Commitment | Reveal] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            self._outbox.put_nowait(text)
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.QueueFull:
            raise WorkerTimeout(f"worker {self.worker_id} outbox is full") from None
        except TimeoutError:
            raise WorkerTimeout(
                f"worker {self.worker_id} did not answer within {timeout_s:.1f}s",
                worker_id=self.worker_id,
            ) from None
        finally:
            self._pending.pop(key, None)

    def post(self, text: str) -> None:
        """Queue a message that expects no direct reply (jobs answer asynchronously)."""
        if self.closed:
            raise WorkerLost(f"worker {self.worker_id} is not connected", worker_id=self.worker_id)
        try:
            self._outbox.put_nowait(text)
        except asyncio.QueueFull:
            raise WorkerTimeout(f"worker {self.worker_id} outbox is full") from None

    async def commitment(self, spec: ChallengeSpec, timeout_s: float) -> Commitment:
        text = RunChallenge(spec=spec).model_dump_json()
        result = await self._request(("commit", spec.challenge_id), text, timeout_s)
        assert isinstance(result, Commitment)
        return result

    async def reveal(self, request: RevealRequest, timeout_s: float) -> Reveal:
        # The worker needs the columns too: it reveals only the segments that hold them.
        text = AskReveal(request=request).model_dump_json()
        result = await self._request(("reveal", request.challenge_id), text, timeout_s)
        assert isinstance(result, Reveal)
        return result

    def deliver(self, message: Committed | Revealed | ChallengeAborted) -> None:
        """Route a worker's answer to the request waiting for it; strays are logged."""
        if isinstance(message, Committed):
            key, value = ("commit", message.commitment.challenge_id), message.commitment
            self._resolve(key, value)
        elif isinstance(message, Revealed):
            self._resolve(("reveal", message.reveal.challenge_id), message.reveal)
        else:
            for kind in ("commit", "reveal"):
                future = self._pending.get((kind, message.challenge_id))
                if future is not None and not future.done():
                    future.set_exception(
                        WorkerLost(f"worker aborted: {message.reason}", reason="aborted")
                    )

    def _resolve(self, key: tuple[str, str], value: Commitment | Reveal) -> None:
        future = self._pending.get(key)
        if future is None or future.done():
            log.warning("unexpected answer", extra={"worker": self.worker_id, "key": key})
            return
        future.set_result(value)

    def fail_all(self, why: str) -> None:
        self.closed = True
        for future in self._pending.values():
            if not future.done():
                future.set_exception(
                    WorkerLost(f"worker {self.worker_id} lost: {why}", worker_id=self.worker_id)
                )

    async def hang_up(self) -> None:
        """Close the connection itself (the reader then ends and detaches the worker)."""
        if self._hang_up is not None:
            with contextlib.suppress(Exception):
                await self._hang_up()

    async def close(self, why: str) -> None:
        self.fail_all(why)
        self._sender.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._sender
