"""Job logs on disk and between worker and miner: records cut back the same however the bytes
are chunked, pages read by line number within their bounds, a cap per job that says what it
dropped, and a total cap that deletes finished jobs' logs first."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byteleap.net.job_log import (
    HEADER_BYTES,
    MAX_RECORD_BYTES,
    LogFormatError,
    Record,
    RecordScanner,
    records,
    split_lines,
)
from byteleap.net.log_spill import INDEX_EVERY, LogSpill, SpillBudget
from byteleap.net.messages import MAX_LOG_PAGE_BYTES, JobLogs

_blobs = st.lists(
    st.tuples(st.sampled_from(["stdout", "stderr"]), st.binary(min_size=1, max_size=400)),
    max_size=20,
)


def _spill(
    tmp_path: Path, name: str = "a", *, cap: int = 1 << 30, budget: SpillBudget | None = None
) -> LogSpill:
    return LogSpill(tmp_path / f"{name}.log", cap=cap, budget=budget or SpillBudget(1 << 40))


@given(_blobs, st.data())
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_records_survive_any_chunking(
    tmp_path: Path, blobs: list[tuple[str, bytes]], data: st.DataObject
) -> None:
    sent = [r for stream, blob in blobs for r in records(stream, 1.5, blob)]  # type: ignore[arg-type]
    raw = b"".join(b"".join(r.encoded()) for r in sent)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    scanner = RecordScanner()
    got: list[Record] = []
    for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        got += scanner.feed(raw[a:b])
    assert got == sent and scanner.pending == 0


def test_a_long_blob_becomes_records_cut_after_newlines() -> None:
    blob = (b"y" * 999 + b"\n") * 600  # 600 kB
    cut = list(records("stdout", 0.0, blob))
    assert len(cut) == 3 and all(len(r.payload) <= MAX_RECORD_BYTES for r in cut)
    assert all(r.payload.endswith(b"\n") for r in cut)
    assert b"".join(r.payload for r in cut) == blob and sum(r.lines for r in cut) == 600


@pytest.mark.adversarial
@pytest.mark.parametrize(
    "raw",
    [
        b"\x00" * HEADER_BYTES,  # no magic
        b"".join(Record("stdout", 0.0, b"x\n", 1).encoded()).replace(b"\xb1\x00", b"\xb1\x07", 1),
        b"\xb1\x00"
        + (1).to_bytes(4, "little")
        + (MAX_RECORD_BYTES + 1).to_bytes(4, "little")
        + b"\x00" * 8,  # over the record size
    ],
    ids=["magic", "stream", "size"],
)
def test_bytes_that_are_not_records_are_refused(raw: bytes) -> None:
    with pytest.raises(LogFormatError):
        RecordScanner().feed(raw)


def test_pages_by_line_number_reach_every_line_in_order(tmp_path: Path) -> None:
    spill = _spill(tmp_path)
    for i in range(300):  # ~1.3 MB: several index entries
        lines = b"".join(b"%06d %s\n" % (i * 10 + j, b"z" * 400) for j in range(10))
        spill.append("stderr" if i % 7 == 0 else "stdout", float(i), lines)
    assert spill.lines == 3000 and spill.size > 4 * INDEX_EVERY

    after, seen = 0, []
    while True:
        page = spill.read(after, limit=700)
        if not page:
            break
        assert len(page) <= 700
        assert (
            len(JobLogs(job_id="job_pages_1", lines=page, done=False).model_dump_json())
            <= MAX_LOG_PAGE_BYTES
        )
        seen += page
        after = page[-1].seq + 1
    assert [line.seq for line in seen] == list(range(3000))
    assert all(line.line.startswith(f"{line.seq:06d} ") for line in seen)
    middle = spill.read(1234, limit=1)
    assert middle[0].seq == 1234 and middle[0].stream == "stdout" and middle[0].ts == 123.0


@pytest.mark.adversarial
def test_a_page_of_escaped_lines_stays_within_its_bytes(tmp_path: Path) -> None:
    spill = _spill(tmp_path)
    nasty = (b"\x01" * 60_000 + b"\n") * 40  # each byte six in JSON
    spill.append("stdout", 0.0, nasty)
    page = spill.read(0, limit=10_000)
    assert 1 <= len(page) < 40
    body = JobLogs(job_id="job_escaped", lines=page, done=False, more=True).model_dump_json()
    assert len(body.encode()) <= MAX_LOG_PAGE_BYTES
    assert json.loads(body)["lines"][0]["line"] == "\x01" * 60_000


def test_a_job_over_its_cap_keeps_the_head_and_says_what_it_dropped(tmp_path: Path) -> None:
    spill = _spill(tmp_path, cap=100_000)
    for _ in range(100):
        spill.append("stdout", 0.0, b"w" * 9_999 + b"\n")  # 1 MB
    assert spill.size <= 100_000 and spill.dropped_bytes == 1_000_000 - 10_000 * (spill.lines)
    kept = spill.lines
    spill.finish(1.0)
    last = spill.read(kept, limit=10)
    assert len(last) == 1 and last[0].stream == "stderr"
    assert f"{spill.dropped_bytes} bytes of output dropped" in last[0].line
    spill.append("stdout", 2.0, b"late\n")  # a finished log takes nothing more
    assert spill.lines == kept + 1


def test_the_total_cap_deletes_finished_logs_oldest_first(tmp_path: Path) -> None:
    budget = SpillBudget(310_000)  # three records of 100 kB and a header
    old, newer, running = (_spill(tmp_path, n, budget=budget) for n in ("old", "newer", "run"))
    blob = b"q" * 99_999 + b"\n"
    old.append("stdout", 0.0, blob)
    old.finish(0.0)
    newer.append("stdout", 0.0, blob)
    newer.finish(0.0)
    running.append("stdout", 0.0, blob)
    assert budget.used <= 310_000 and not old.evicted

    running.append("stdout", 0.0, blob)  # needs room: the oldest finished log goes
    assert old.evicted and not old.path.exists() and old.read(0, 10) == []
    assert not newer.evicted and running.lines == 2 and budget.used <= 310_000
    running.append("stdout", 0.0, blob)
    running.append("stdout", 0.0, blob)  # nothing finished is left: cut, and counted
    assert newer.evicted and running.lines == 3 and running.dropped_bytes == len(blob)
    for spill in (old, newer, running):
        spill.delete()
    assert budget.used == 0 and not any(tmp_path.iterdir())


def test_a_budget_that_does_not_evict_cuts_instead(tmp_path: Path) -> None:
    budget = SpillBudget(150_000, evicts=False)
    done, live = _spill(tmp_path, "done", budget=budget), _spill(tmp_path, "live", budget=budget)
    done.append("stdout", 0.0, b"d" * 100_000)
    done.finish(0.0)
    live.append("stdout", 0.0, b"l" * 100_000)
    assert not done.evicted and live.size == 0 and live.dropped_bytes == 100_000


def test_split_lines_keeps_a_last_piece_without_newline() -> None:
    assert split_lines(b"a\nb\n") == [b"a", b"b"]
    assert split_lines(b"a\n\nb") == [b"a", b"", b"b"]
