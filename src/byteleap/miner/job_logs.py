"""One job's log on the miner, as its worker sends it: chunks of the worker's file, in order,
cut back into records and spilled to the miner's own file (``net.log_spill``), so the whole
log (up to the caps) can be read page by page while memory stays flat.

The worker's bytes are checked, not trusted: a chunk must start where the last one ended (a
repeated one is ignored), and the records must parse. A log that breaks a rule keeps what it
had and takes nothing more. The log is complete once the worker's whole file is in (its size
comes with the job's end), or when nothing more can come (the worker was lost, or the job
ended without a size: an older worker, or an end the miner decided itself).
"""

from __future__ import annotations

import logging
import time

from byteleap.net.job_log import LogFormatError, RecordScanner
from byteleap.net.log_spill import LogSpill
from byteleap.net.messages import JobLogChunk, JobOutput

log = logging.getLogger(__name__)


class ReceivedLog:
    def __init__(self, spill: LogSpill) -> None:
        self.spill = spill
        self.received = 0  # bytes of the worker's file taken, in order
        self.expected: int | None = None  # the worker's file size, once the job ended
        self.complete = False
        self.broken: str | None = None  # why the rest of the log was refused
        self._scanner = RecordScanner()
        self._next_line = 0  # the next JobOutput line number (older workers)

    def chunk(self, message: JobLogChunk) -> bool:
        """Take a chunk; True when the log grew."""
        if self.complete or self.broken is not None:
            return False
        skip = self.received - message.offset
        if skip < 0:
            self._break(f"a chunk at {message.offset} skips bytes after {self.received}")
            return False
        if skip >= len(message.data):
            return False  # sent again
        data = message.data[skip:]
        try:
            records = self._scanner.feed(data)
        except LogFormatError as exc:
            self._break(str(exc))
            return False
        self.received += len(data)
        for record in records:
            self.spill.add(record)
        self._complete_when_whole()
        return True

    def lines(self, message: JobOutput) -> bool:
        """Take a batch of lines from a worker that sends them one by one."""
        if self.complete:
            return False
        grew = False
        for line in message.lines:
            if line.seq >= self._next_line:  # a resent batch never duplicates lines
                self.spill.append(line.stream, line.ts, line.line.encode(errors="replace") + b"\n")
                self._next_line = line.seq + 1
                grew = True
        return grew

    def end(self, size: int | None) -> None:
        """The job ended; ``size``: the worker's whole log (None: nothing more will come)."""
        if size is None:
            self.close()
            return
        self.expected = size
        self._complete_when_whole()

    def close(self) -> None:
        """Nothing more will come: the log is as complete as it will be."""
        if not self.complete:
            self.complete = True
            self.spill.finish(time.time())

    def missing(self) -> int:
        """Bytes of the worker's log that were never taken (0 while it may still come)."""
        if not self.complete or self.expected is None:
            return 0
        return max(0, self.expected - self.received)

    def _complete_when_whole(self) -> None:
        if self.expected is not None and self.received >= self.expected:
            self.close()

    def _break(self, why: str) -> None:
        log.warning("job log refused", extra={"path": str(self.spill.path), "why": why})
        self.broken = why
        self.close()
