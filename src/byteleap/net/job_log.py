"""The format of a job's log on disk and between worker and miner: a sequence of records.

A record is what one read of a program's pipe gave (whole lines, or one piece of a long one):
an 18-byte header — a magic byte, the stream, how many lines, how many bytes, the time —
then the bytes. Lines are numbered from 0 across both streams in order, so a line's number
(its ``seq``) is where a reader asks to start. Nothing here splits text into line objects
until a page is read: a program printing hundreds of megabytes costs a few thousand records,
not millions of objects.

The worker writes its records to a file and sends the file's bytes as they are; the miner cuts
them back into records with ``RecordScanner``, which refuses anything malformed (the miner
does not trust its workers' bytes any more than their messages).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from byteleap.errors import ByteleapError
from byteleap.protocol.execution import Stream

_HEADER = struct.Struct("<BBIId")  # magic, stream, lines, bytes, unix time
_MAGIC = 0xB1
HEADER_BYTES = _HEADER.size
STREAMS: tuple[Stream, Stream] = ("stdout", "stderr")
#: A record holds at most this many bytes; a longer blob becomes several records.
MAX_RECORD_BYTES = 256 << 10


class LogFormatError(ByteleapError):
    """Bytes that are not a job log (a bad header, a record over the size limit)."""

    reason = "bad_log"


@dataclass(frozen=True)
class Record:
    stream: Stream
    ts: float
    payload: bytes
    lines: int

    def encoded(self) -> tuple[bytes, bytes]:
        """(header, payload) as written to a file or sent."""
        header = _HEADER.pack(
            _MAGIC, STREAMS.index(self.stream), self.lines, len(self.payload), self.ts
        )
        return header, self.payload


def line_count(payload: bytes) -> int:
    """How many lines a non-empty payload holds (a last piece without a newline counts)."""
    return payload.count(b"\n") + (0 if payload.endswith(b"\n") else 1)


def split_lines(payload: bytes) -> list[bytes]:
    parts = payload.split(b"\n")
    if payload.endswith(b"\n"):
        parts.pop()
    return parts


def records(stream: Stream, ts: float, blob: bytes) -> Iterator[Record]:
    """``blob`` as records of at most ``MAX_RECORD_BYTES``, cut after a newline where one is
    in reach (so a line is split across records only when it is longer than a record)."""
    view = memoryview(blob)
    while view:
        piece = view[:MAX_RECORD_BYTES]
        if len(view) > MAX_RECORD_BYTES:
            cut = bytes(piece).rfind(b"\n")
            if cut >= 0:
                piece = piece[: cut + 1]
        payload = bytes(piece)
        yield Record(stream, ts, payload, line_count(payload))
        view = view[len(payload) :]


def parse_header(header: bytes) -> tuple[Stream, int, int, float]:
    """(stream, lines, payload bytes, ts) of a record header; `LogFormatError` if it is not one."""
    magic, stream, lines, size, ts = _HEADER.unpack(header)
    if magic != _MAGIC or stream >= len(STREAMS):
        raise LogFormatError("not a log record header")
    if not 0 < size <= MAX_RECORD_BYTES or not 0 < lines <= size:
        raise LogFormatError(f"a log record of {size} bytes and {lines} lines")
    return STREAMS[stream], lines, size, ts


class RecordScanner:
    """Cuts a stream of log bytes, arriving in pieces of any size, back into records. What
    it holds between pieces is at most one record (``MAX_RECORD_BYTES`` and a header)."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    @property
    def pending(self) -> int:
        """Bytes of a record not complete yet."""
        return len(self._buffer)

    def feed(self, data: bytes) -> list[Record]:
        buffer = self._buffer
        buffer += data
        found: list[Record] = []
        at = 0
        while len(buffer) - at >= HEADER_BYTES:
            stream, _, size, ts = parse_header(bytes(buffer[at : at + HEADER_BYTES]))
            end = at + HEADER_BYTES + size
            if end > len(buffer):
                break
            payload = bytes(buffer[at + HEADER_BYTES : end])
            # The count is the miner's own, not the header's: a reader trusts what it wrote.
            found.append(Record(stream, ts, payload, line_count(payload)))
            at = end
        del buffer[:at]
        return found
