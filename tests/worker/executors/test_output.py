"""Bounded output and line splitting, and the path rule that keeps inputs in the work dir."""

from __future__ import annotations

from pathlib import PurePosixPath

from hypothesis import given
from hypothesis import strategies as st

from byteleap.protocol.execution import safe_relative_path
from byteleap.worker.executors.output import (
    MAX_LINE_BYTES,
    PRELUDE_BYTES,
    READER_BACKLOG,
    LineSplitter,
    OutputLog,
    _lines,
)

_chunks = st.lists(st.binary(max_size=300).map(lambda b: b.replace(b"\r", b"\n")), max_size=30)


def _feed(chunks: list[bytes], limit: int, log: OutputLog | None = None) -> OutputLog:
    log = log or OutputLog(limit)
    splitter = LineSplitter("stdout", log)
    for chunk in chunks:
        splitter.feed(chunk)
    splitter.flush()
    return log


@given(_chunks, st.integers(min_value=1, max_value=500))
def test_tail_is_the_end_of_the_stream_and_accounts_for_every_byte(
    chunks: list[bytes], limit: int
) -> None:
    stream = b"".join(chunks)
    tail = _feed(chunks, limit).tails["stdout"]
    kept = tail.kept()

    assert len(kept) <= limit
    assert len(kept) + tail.dropped_bytes == len(stream)
    assert stream.endswith(kept)
    if len(stream) > limit and b"\n" in stream[-limit:-1]:
        assert stream[: len(stream) - len(kept)].endswith(b"\n")  # the tail starts a line


@given(_chunks, st.data())
def test_lines_do_not_depend_on_how_the_pipe_chunked_them(
    chunks: list[bytes], data: st.DataObject
) -> None:
    stream = b"".join(chunks)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=10)))
    rechunked = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]

    def lines(parts: list[bytes]) -> list[str]:
        blobs = _feed(parts, 1 << 20).tails["stdout"].blobs
        return [line.line for _, ts, blob in blobs for line in _lines("stdout", ts, blob)]

    expected = stream.decode(errors="replace").split("\n")
    if expected[-1] == "":
        expected.pop()
    assert lines(chunks) == lines(rechunked)
    assert len(lines(chunks)) == len(expected)


async def test_a_reader_sees_live_lines_and_its_backlog_is_bounded() -> None:
    log = OutputLog(1 << 30)
    splitter = LineSplitter("stderr", log)
    splitter.feed(b"before\n")
    follower = log.follow()
    assert (await anext(follower)).line == "before"  # replayed from the tail

    splitter.feed(b"".join(b"%d\n" % i for i in range(READER_BACKLOG + 50)))
    log.close()
    rest = [line async for line in follower]

    assert len(rest) == READER_BACKLOG
    assert rest[-1].line == str(READER_BACKLOG + 49) and rest[0].stream == "stderr"


def test_a_line_without_newline_is_cut_into_bounded_pieces() -> None:
    log = _feed([b"z" * (MAX_LINE_BYTES * 2 + 5)], 1 << 20)
    sizes = [len(blob) for _, _, blob in log.tails["stdout"].blobs]
    assert sizes == [MAX_LINE_BYTES, MAX_LINE_BYTES, 5]


@given(st.text(alphabet="ab./\\\x00", max_size=12))
def test_accepted_paths_stay_inside_the_base(path: str) -> None:
    try:
        normalised = safe_relative_path(path)
    except ValueError:
        return
    base = PurePosixPath("/work/job")
    joined = base / normalised
    assert ".." not in joined.parts and joined != base
    assert joined.is_relative_to(base)


def test_escaping_paths_are_rejected() -> None:
    for path in ["", ".", "..", "../x", "a/../../x", "/etc/passwd", "a\\..\\b", "a\x00"]:
        try:
            safe_relative_path(path)
        except ValueError:
            continue
        raise AssertionError(f"{path!r} was accepted")
    assert safe_relative_path("./a//b/") == "a/b"


def test_a_recorder_gets_everything_printed_before_it_came_then_each_blob() -> None:
    log = OutputLog(100)  # tails far smaller than what comes first
    for i in range(10):
        log.publish("stdout" if i % 2 else "stderr", b"%d" % i * 1000 + b"\n")
    got: list[tuple[str, bytes]] = []
    assert log.record(lambda stream, ts, blob: got.append((stream, blob))) == 0
    log.publish("stdout", b"late\n")
    assert [blob[:1] for _, blob in got] == [b"%d" % i for i in range(10)] + [b"l"]
    assert [stream for stream, _ in got[:2]] == ["stderr", "stdout"]


def test_past_the_prelude_a_recorder_gets_the_tails_and_what_is_missing() -> None:
    log = OutputLog(1 << 20)
    blob = b"p" * ((512 << 10) - 1) + b"\n"  # 512 KiB
    for _ in range(PRELUDE_BYTES // len(blob) + 4):
        log.publish("stdout", blob)
    got: list[bytes] = []
    missing = log.record(lambda stream, ts, blob: got.append(blob))
    assert 0 < len(b"".join(got)) <= 2 << 20
    assert missing + len(b"".join(got)) == log.tails["stdout"].total_bytes
