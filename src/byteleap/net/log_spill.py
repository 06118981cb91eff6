"""Job logs spilled to disk, with a cap per job and a cap for all jobs of a node together.

The worker and the miner each write every job's log to a file of ``net.job_log`` records
under their own state directory. A job's file takes at most ``cap`` bytes: what comes past
it is counted, not written, and when the log ends a last line (on stderr) says how much was
dropped. All files together take at most the `SpillBudget`'s total: a log that needs room
deletes the files of finished jobs, oldest first; with none left to delete, it is cut there
like at its own cap. A cut log is whole up to the cut (no holes). A file is deleted when its
job is forgotten.

Memory stays small whatever a job prints: a sparse index (one entry per ``INDEX_EVERY``
bytes) is all that is kept per log. A page is read from the file, bounded in lines and in
the JSON it makes (``MAX_LOG_PAGE_BYTES``).
"""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import shutil
from pathlib import Path

from byteleap.net.job_log import HEADER_BYTES, Record, parse_header, records, split_lines
from byteleap.net.messages import MAX_LOG_PAGE_BYTES, JobLogLine
from byteleap.protocol.execution import Stream

log = logging.getLogger(__name__)

INDEX_EVERY = 64 << 10
MAX_LINE_CHARS = 65536  # JobLogLine's bound
_LINE_JSON_OVERHEAD = 64  # a line's seq, stream, ts and punctuation in a page


def line_json_cost(text: str) -> int:
    """At least what a line costs in a page's JSON (escapes and non-ASCII counted long)."""
    return len(json.dumps(text)) + _LINE_JSON_OVERHEAD


def clear_directory(directory: Path) -> None:
    """Empty ``directory`` (a node's logs of jobs it no longer knows, after a restart)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)


class SpillBudget:
    """The bytes every job's log on one node may take together. With ``evicts`` False, a
    finished log is never deleted for room (a worker's, until it has sent it): past the
    total, a log is cut instead."""

    def __init__(self, total: int, *, evicts: bool = True) -> None:
        self.total = total
        self.evicts = evicts
        self.used = 0
        self._spills: dict[int, LogSpill] = {}  # by id, oldest first

    def add(self, spill: LogSpill) -> None:
        self._spills[id(spill)] = spill

    def remove(self, spill: LogSpill, size: int) -> None:
        if self._spills.pop(id(spill), None) is not None:
            self.used -= size

    def reserve(self, asking: LogSpill, size: int) -> bool:
        """Room for ``size`` more bytes of ``asking``'s log, deleting finished logs (oldest
        first) to make it; False when even that is not enough."""
        if self.used + size > self.total and self.evicts:
            for spill in list(self._spills.values()):
                if spill.finished and spill is not asking and spill.size:
                    spill.evict()
                    if self.used + size <= self.total:
                        break
        if self.used + size > self.total:
            return False
        self.used += size
        return True

    def force(self, size: int) -> None:
        """Take ``size`` bytes past the total (a cut's own note, a few dozen bytes)."""
        self.used += size


class LogSpill:
    """One job's log file: appended to while the job runs, read by page, deleted at the end."""

    def __init__(self, path: Path, *, cap: int, budget: SpillBudget) -> None:
        self.path = path
        self.cap = cap
        self.budget = budget
        self.size = 0  # bytes in the file
        self.lines = 0  # lines in the file
        self.dropped_bytes = 0  # output past a cap, never written
        self.finished = False
        self.evicted = False  # deleted to make room for another job's log
        self._index: list[tuple[int, int]] = []  # (first line, file offset), ascending
        self._fd: int | None = None
        budget.add(self)

    # -- writing ------------------------------------------------------------------------

    def append(self, stream: Stream, ts: float, blob: bytes) -> None:
        """Add one blob of output (whole lines, or one piece of a long one)."""
        for record in records(stream, ts, blob):
            self.add(record)

    def add(self, record: Record) -> None:
        size = HEADER_BYTES + len(record.payload)
        # Once cut, cut for good: the log is whole up to the cut, never with holes.
        if (
            self.finished
            or self.dropped_bytes
            or self.size + size > self.cap
            or not self.budget.reserve(self, size)
        ):
            self.dropped_bytes += len(record.payload)
            return
        self._write(record, size)

    def _write(self, record: Record, size: int) -> None:
        if self._fd is None:
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600
            )
        if not self._index or self.size - self._index[-1][1] >= INDEX_EVERY:
            self._index.append((self.lines, self.size))
        os.writev(self._fd, record.encoded())
        self.size += size
        self.lines += record.lines

    def finish(self, ts: float) -> None:
        """No more output: say what a cap dropped, in a last line past the cap, and close."""
        if self.finished:
            return
        if self.dropped_bytes and not self.evicted:
            note = (
                f"[byteleap] {self.dropped_bytes} bytes of output dropped: a job's log keeps "
                f"at most {self.cap} bytes here, and all jobs' logs {self.budget.total}\n"
            ).encode()
            record = Record("stderr", ts, note, 1)
            size = HEADER_BYTES + len(note)
            self.budget.force(size)
            self._write(record, size)
        self.finished = True
        self._close()

    def _close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def evict(self) -> None:
        """Delete the file to make room for another log (its job stays known, its log gone)."""
        self.evicted = True
        self._drop_file()

    def delete(self) -> None:
        """The job is forgotten: its file goes, and its room."""
        self.finished = True
        self._drop_file()

    def _drop_file(self) -> None:
        self._close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        self.budget.remove(self, self.size)  # once: an evicted log, forgotten later, is out
        self._index.clear()

    # -- reading ------------------------------------------------------------------------

    def read_bytes(self, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes of the file from ``offset`` (what a worker sends on)."""
        end = min(self.size, offset + length)
        if self.evicted or end <= offset:
            return b""
        with self.path.open("rb") as file:
            file.seek(offset)
            return file.read(end - offset)

    def read(self, after: int, limit: int, max_bytes: int = MAX_LOG_PAGE_BYTES) -> list[JobLogLine]:
        """Lines numbered ``after`` and up: at most ``limit`` of them and ``max_bytes`` of
        page JSON (one line at least, however long)."""
        if self.evicted or after >= self.lines or limit <= 0:
            return []
        at = bisect.bisect_right(self._index, (after, self.size)) - 1  # the last entry at or before
        seq, offset = self._index[max(at, 0)]
        page: list[JobLogLine] = []
        spent = 0
        with self.path.open("rb") as file:
            file.seek(offset)
            while offset < self.size:
                stream, count, size, ts = parse_header(file.read(HEADER_BYTES))
                offset += HEADER_BYTES + size
                if seq + count <= after:  # wholly before the start: not even read
                    file.seek(size, os.SEEK_CUR)
                    seq += count
                    continue
                for raw in split_lines(file.read(size)):
                    if seq >= after:
                        text = raw.decode(errors="replace")[:MAX_LINE_CHARS]
                        spent += line_json_cost(text)
                        if page and (spent > max_bytes or len(page) >= limit):
                            return page
                        page.append(JobLogLine(seq=seq, stream=stream, line=text, ts=ts))
                    seq += 1
        return page
