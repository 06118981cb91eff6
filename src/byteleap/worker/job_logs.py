"""A job's log on the worker: spilled to a file as the program prints, sent on from the file.

The execution hands every blob of output to the job's `LogSpill` (capped per job, and across
jobs by the runner's `SpillBudget`); the forwarder sends the file's bytes to the miner as
`JobLogChunk`s of at most ``LOG_CHUNK_BYTES``, in order, as it grows: at once when a chunk is
full, else after ``flush_s`` (a chatty program costs a few messages a second, a quiet one's
last line is not held back). The program never waits for the miner, and memory does not grow
with what it prints: a slow link only leaves more of the file to send.

The job's end is told as soon as the program ends, with the log's size; the rest of the log
follows it, so a job that printed gigabytes is seen finished as soon as one that printed a
line. The file is deleted once sent (or when the link is gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from byteleap.net.log_spill import LogSpill
from byteleap.net.messages import LOG_CHUNK_BYTES, JobLogChunk
from byteleap.protocol.execution import Stream
from byteleap.worker.executors import Execution

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
#: How long the end waits for the last lines of an execution that hands over lines only.
LINES_GRACE_S = 5.0


class JobLog:
    def __init__(self, job_id: str, spill: LogSpill, send: Send, flush_s: float) -> None:
        self.job_id = job_id
        self.spill = spill
        self.sent = 0  # bytes of the file the miner was sent
        self._send = send
        self._flush_s = flush_s
        self._grown = asyncio.Event()
        self._ended = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def attach(self, execution: Execution) -> None:
        """Take the execution's output — every blob, where it can hand them over (the
        executors here all can), else its lines — and start sending it on."""
        record = getattr(execution, "record", None)
        if callable(record):
            lost = record(self._blob)
            if lost:  # printed at once, and over the tails, before the log was taken
                note = f"[byteleap] {lost} bytes printed first are missing from this log\n"
                self.spill.append("stderr", time.time(), note.encode())
        else:
            self._tasks.append(asyncio.create_task(self._copy_lines(execution)))
        self._tasks.append(asyncio.create_task(self._forward()))

    def _blob(self, stream: Stream, ts: datetime, blob: bytes) -> None:
        self.spill.append(stream, ts.timestamp(), blob)
        self._grown.set()

    async def _copy_lines(self, execution: Execution) -> None:
        async for line in execution.logs():
            self._blob(line.stream, line.ts, line.line.encode(errors="replace") + b"\n")

    async def end(self) -> int:
        """The program ended: close the log (a last line says what a cap dropped); returns
        its size, which the miner is told with the job's end."""
        copying = self._tasks[:-1]
        if copying:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(*copying), LINES_GRACE_S)
        self.spill.finish(time.time())
        self._ended.set()
        self._grown.set()
        return self.spill.size

    async def sent_all(self) -> None:
        """Once every byte of the ended log is sent (or the link failed, which is logged)."""
        if not self._tasks:
            return
        try:
            await self._tasks[-1]
        except Exception as exc:  # the link dropped: the miner gives up on the rest
            log.warning("job log not sent whole", extra={"job": self.job_id, "why": repr(exc)})

    async def close(self) -> None:
        """Stop sending and delete the file."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.spill.delete()

    async def _forward(self) -> None:
        while True:
            pending = self.spill.size - self.sent
            if not pending:
                if self._ended.is_set():
                    return
                self._grown.clear()
                await self._grown.wait()
                continue
            if pending < LOG_CHUNK_BYTES and not self._ended.is_set():
                # Not a full chunk yet: give the program flush_s to add to it.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ended.wait(), self._flush_s)
            data = self.spill.read_bytes(self.sent, LOG_CHUNK_BYTES)
            if not data:
                return
            chunk = JobLogChunk(job_id=self.job_id, offset=self.sent, data=data)
            await self._send(chunk.model_dump_json())
            self.sent += len(data)
