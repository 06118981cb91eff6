"""Bounded program output: the tail of each stream, and live fan-out of lines to log readers.

Memory and CPU stay bounded however much a program prints. Output arrives in blobs (whatever
the pipe delivered, cut at the last newline); each stream keeps blobs covering its last
``max_output_bytes`` and counts the rest as dropped. ``LogLine`` objects are made only for live
readers, and at most ``READER_BACKLOG`` per blob: a reader holds that many lines at most and
one that falls behind loses the oldest — the live view is best effort under a flood, the tail
in the result is exact. A recorder (``record``) is handed every blob as it comes, untouched:
that is how the whole log reaches the miner (``worker.job_logs``). What a fast program prints
before its recorder is there (its pipes are read while the executor is still starting it) is
kept whole for it, up to ``PRELUDE_BYTES``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime

from byteleap.protocol.execution import (
    ArtifactInfo,
    ExecutionResult,
    ExecutionState,
    KilledBy,
    LogLine,
    Stream,
)

#: A line longer than this is cut into pieces, so a program that never prints a newline
#: cannot make the splitter's buffer grow without bound.
MAX_LINE_BYTES = 64 << 10
READER_BACKLOG = 10_000

#: Told every blob of output: its stream, when it came, its bytes.
Recorder = Callable[[Stream, datetime, bytes], None]
#: Output kept whole until a recorder takes it; past this, only the tails are.
PRELUDE_BYTES = 16 << 20


class StreamTail:
    """The end of one stream: blobs covering at least its last ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total_bytes = 0
        self.blobs: deque[tuple[int, datetime, bytes]] = deque()
        self._held = 0

    def add(self, seq: int, ts: datetime, blob: bytes) -> None:
        self.blobs.append((seq, ts, blob))
        self.total_bytes += len(blob)
        self._held += len(blob)
        while self._held - len(self.blobs[0][2]) >= self.limit:
            self._held -= len(self.blobs.popleft()[2])

    def kept(self) -> bytes:
        """The last ``limit`` bytes at most, starting at a line start when one is in reach."""
        data = b"".join(blob for _, _, blob in self.blobs)
        if len(data) <= self.limit:
            return data
        data = data[-self.limit :]
        cut = data.find(b"\n")
        return data[cut + 1 :] if 0 <= cut < len(data) - 1 else data

    @property
    def dropped_bytes(self) -> int:
        return self.total_bytes - len(self.kept())

    def text(self) -> str:
        return self.kept().decode(errors="replace")


def _lines(stream: Stream, ts: datetime, blob: bytes) -> list[LogLine]:
    # A blob is whole lines each ending in a newline, or one piece without any.
    parts = blob.split(b"\n")
    if parts[-1] == b"" and len(parts) > 1:
        parts.pop()
    return [
        LogLine(stream=stream, line=part.decode(errors="replace"), ts=ts)
        for part in parts[-READER_BACKLOG:]
    ]


class _Reader:
    def __init__(self, backlog: Iterable[LogLine]) -> None:
        self.lines: deque[LogLine] = deque(backlog, maxlen=READER_BACKLOG)
        self.wake = asyncio.Event()


#: How a program that something stopped ended, by what stopped it.
STATE_OF_CAUSE: dict[KilledBy, ExecutionState] = {
    "timeout": ExecutionState.TIMED_OUT,
    "cancel": ExecutionState.CANCELLED,
    "memory": ExecutionState.FAILED,
}


class OutputLog:
    """Both streams of one program: tails for the result, fan-out for live readers."""

    def result(
        self,
        *,
        code: int,
        started_at: datetime,
        artifacts: list[ArtifactInfo],
        killed_by: KilledBy | None,
        detail: str,
        failed: bool = False,
    ) -> ExecutionResult:
        """The program's result from its exit code, what stopped it and the kept tails."""
        if failed:
            state = ExecutionState.FAILED
        elif killed_by is not None:
            state = STATE_OF_CAUSE[killed_by]
        else:
            state = ExecutionState.SUCCEEDED if code == 0 else ExecutionState.FAILED
        stdout, stderr = self.tails["stdout"], self.tails["stderr"]
        return ExecutionResult(
            exit_code=code,
            state=state,
            stdout_tail=stdout.text(),
            stderr_tail=stderr.text(),
            stdout_dropped_bytes=stdout.dropped_bytes,
            stderr_dropped_bytes=stderr.dropped_bytes,
            started_at=started_at,
            finished_at=datetime.now(UTC),
            artifacts=artifacts,
            killed_by=killed_by,
            detail=detail,
        )

    def __init__(self, max_output_bytes: int) -> None:
        self.tails: dict[Stream, StreamTail] = {
            "stdout": StreamTail(max_output_bytes),
            "stderr": StreamTail(max_output_bytes),
        }
        self._seq = itertools.count()
        self._readers: list[_Reader] = []
        self._recorders: list[Recorder] = []
        self._closed = False
        # Every blob so far, for the first recorder; None once it took them, or past the bound.
        self._prelude: list[tuple[Stream, datetime, bytes]] | None = []
        self._prelude_bytes = 0

    def record(self, recorder: Recorder) -> int:
        """Hand ``recorder`` what was printed so far, then every blob as it comes; returns
        how many bytes printed before are missing from what it was handed (0 unless more
        than ``PRELUDE_BYTES`` came first, or it is not the first recorder)."""
        if self._prelude is not None:
            prelude, self._prelude = self._prelude, None
            for name, ts, blob in prelude:
                recorder(name, ts, blob)
            self._recorders.append(recorder)
            return 0
        kept = sorted(
            (seq, name, ts, blob) for name, t in self.tails.items() for seq, ts, blob in t.blobs
        )
        for _, name, ts, blob in kept:
            recorder(name, ts, blob)
        self._recorders.append(recorder)
        return sum(t.total_bytes for t in self.tails.values()) - sum(len(k[3]) for k in kept)

    def publish(self, stream: Stream, blob: bytes) -> None:
        ts = datetime.now(UTC)
        self.tails[stream].add(next(self._seq), ts, blob)
        if self._prelude is not None:
            self._prelude_bytes += len(blob)
            if self._prelude_bytes <= PRELUDE_BYTES:
                self._prelude.append((stream, ts, blob))
            else:  # nobody is coming for it: the tails will do
                self._prelude = None
        for recorder in self._recorders:
            recorder(stream, ts, blob)
        if not self._readers:
            return
        lines = _lines(stream, ts, blob)
        for reader in self._readers:
            reader.lines.extend(lines)
            reader.wake.set()

    def close(self) -> None:
        self._closed = True
        for reader in self._readers:
            reader.wake.set()

    async def follow(self) -> AsyncIterator[LogLine]:
        """The kept lines of both streams in order, then live lines until ``close``."""
        tagged = [
            [(seq, name, ts, blob) for seq, ts, blob in t.blobs] for name, t in self.tails.items()
        ]
        backlog = (
            line
            for _, name, ts, blob in heapq.merge(*tagged, key=lambda entry: entry[0])
            for line in _lines(name, ts, blob)
        )
        reader = _Reader(backlog)
        self._readers.append(reader)
        try:
            while True:
                while reader.lines:
                    yield reader.lines.popleft()
                if self._closed:
                    return
                reader.wake.clear()
                await reader.wake.wait()
        finally:
            self._readers.remove(reader)


class LineSplitter:
    """Cuts the raw bytes of one stream at its last newline and publishes the whole lines."""

    def __init__(self, stream: Stream, log: OutputLog) -> None:
        self.stream = stream
        self._log = log
        self._pending = bytearray()

    def feed(self, data: bytes) -> None:
        pending = self._pending
        pending += data
        end = pending.rfind(b"\n")
        if end != -1:
            self._log.publish(self.stream, bytes(pending[: end + 1]))
            del pending[: end + 1]
        while len(pending) >= MAX_LINE_BYTES:
            self._log.publish(self.stream, bytes(pending[:MAX_LINE_BYTES]))
            del pending[:MAX_LINE_BYTES]

    def flush(self) -> None:
        """Publish an unterminated last line, at EOF."""
        if self._pending:
            self._log.publish(self.stream, bytes(self._pending))
            self._pending.clear()
