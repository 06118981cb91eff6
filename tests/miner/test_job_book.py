"""The miner's job book holds bounded output (per job and in all, in bytes), status replies
carry small tails, and a cancel the worker never confirms still frees the worker."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from byteleap.miner.jobs import CANCEL_GRACE_S, JobBook
from byteleap.miner.ledger import MinerLedger
from byteleap.miner.node import MinerNode
from byteleap.net.log_spill import LogSpill, SpillBudget
from byteleap.net.messages import (
    MAX_LOG_PAGE_BYTES,
    MAX_STATUS_TAIL_BYTES,
    Enroll,
    JobEnded,
    JobLogChunk,
    JobLogLine,
    JobOutput,
    JobRefused,
    JobRequest,
    JobStatus,
    RunState,
    WorkerState,
)
from byteleap.protocol.execution import ExecutionResult, ExecutionSpec, ExecutionState
from hardware_samples import gpu_rig

WORKER = "w-0123456789abcdef"
TLS_KEY = "ab" * 32
WIDE = "x" * 60_000  # a line near the worker's 64 KiB cut


def request(job_id: str, worker_id: str = WORKER) -> JobRequest:
    spec = ExecutionSpec(command=["true"], timeout_s=10)
    return JobRequest(job_id=job_id, attempt=1, worker_id=worker_id, spec=spec)


def batch(job_id: str, first: int, count: int, text: str = WIDE) -> JobOutput:
    lines = [JobLogLine(seq=first + i, stream="stdout", line=text, ts=0.0) for i in range(count)]
    return JobOutput(job_id=job_id, lines=lines)


def result(stdout: str, stderr: str = "") -> ExecutionResult:
    now = datetime.now(UTC)
    return ExecutionResult(
        exit_code=0,
        state=ExecutionState.SUCCEEDED,
        stdout_tail=stdout,
        stderr_tail=stderr,
        stdout_dropped_bytes=5,
        stderr_dropped_bytes=0,
        started_at=now,
        finished_at=now,
        artifacts=[],
    )


@pytest.mark.adversarial
def test_one_chatty_job_keeps_at_most_its_cap_and_says_so() -> None:
    cap = 1 << 20
    book = JobBook(max_job_log_bytes=cap, max_log_bytes=64 << 20)
    book.start(request("job_chatty_1"))
    for first in range(0, 2000, 1000):  # 2,000 lines of 60 kB: 120 MB sent
        book.output(batch("job_chatty_1", first, 1000))

    job = book.get("job_chatty_1")
    spill = job.log.spill
    assert spill.size <= cap and book.log_bytes == spill.size == spill.path.stat().st_size
    assert 0 < job.next_seq == spill.lines < 2000  # the head is kept, whole
    assert spill.dropped_bytes == (2000 - spill.lines) * (len(WIDE) + 1)
    status = job.status()
    assert status.log_lines == job.next_seq and "bytes of log dropped" in status.detail
    page = book.logs("job_chatty_1", after=0)
    assert [line.seq for line in page.lines] == list(range(len(page.lines)))
    assert page.lines[0].line == WIDE and page.more and not page.done
    assert len(page.model_dump_json()) <= MAX_LOG_PAGE_BYTES


@pytest.mark.adversarial
def test_the_book_keeps_at_most_its_total_cap_finished_jobs_giving_way_first() -> None:
    book = JobBook(max_job_log_bytes=4 << 20, max_log_bytes=6 << 20)
    book.start(request("job_done_001"))
    book.output(batch("job_done_001", 0, 60))  # ~3.6 MB
    book.end(JobEnded(job_id="job_done_001", result=result("ok\n")))
    book.start(request("job_live_001", worker_id="w-fedcba9876543210"))
    book.output(batch("job_live_001", 0, 60))  # over 6 MiB together

    assert book.log_bytes <= 6 << 20
    done, live = book.get("job_done_001"), book.get("job_live_001")
    assert done.log.spill.evicted and not done.log.spill.path.exists()
    assert "log deleted" in done.status().detail
    assert live.log.spill.dropped_bytes == 0 and live.next_seq == 60
    assert book.log_bytes == live.log.spill.size
    assert book.logs("job_done_001", after=0).done


def worker_log(tmp_path: Path, lines: int, width: int = 100) -> bytes:
    """A worker's log file of ``lines`` numbered lines, as it sends it."""
    spill = LogSpill(tmp_path / "worker.log", cap=1 << 30, budget=SpillBudget(1 << 40))
    for first in range(0, lines, 1000):
        blob = b"".join(
            b"%07d" % i + b"-" * (width - 8) + b"\n" for i in range(first, min(lines, first + 1000))
        )
        spill.append("stdout", 1.0, blob)
    spill.finish(2.0)
    return spill.read_bytes(0, spill.size)


def chunks(job_id: str, data: bytes, size: int, start: int = 0) -> list[JobLogChunk]:
    return [
        JobLogChunk(job_id=job_id, offset=at, data=data[at : at + size])
        for at in range(start, len(data), size)
    ]


def test_a_log_sent_in_chunks_is_read_whole_and_done_only_once_all_is_in(tmp_path: Path) -> None:
    book = JobBook(logs_dir=tmp_path / "logs")
    book.start(request("job_chunked_1"))
    data = worker_log(tmp_path, 20_000)  # 2 MB
    first, rest = (
        chunks("job_chunked_1", data, 300_001)[:3],
        chunks("job_chunked_1", data, 300_001, start=900_003),
    )
    for chunk in [*first, first[1], first[2]]:  # resent chunks change nothing
        book.log_chunk(chunk)
    book.end(JobEnded(job_id="job_chunked_1", result=result("x\n"), log_bytes=len(data)))
    job = book.get("job_chunked_1")
    assert job.state is RunState.SUCCEEDED and not job.log_done
    partial = book.logs("job_chunked_1", after=job.next_seq)
    assert partial.lines == [] and not partial.done  # its last lines are on their way

    for chunk in rest:  # after the end, as a worker sends them
        book.log_chunk(chunk)
    assert job.log_done and job.next_seq == 20_000 and job.status().detail == ""
    after, seqs = 0, []
    while True:
        page = book.logs("job_chunked_1", after=after)
        assert len(page.model_dump_json()) <= MAX_LOG_PAGE_BYTES
        seqs += [line.seq for line in page.lines]
        assert all(line.line.startswith(f"{line.seq:07d}") for line in page.lines)
        if page.done:
            break
        assert page.more
        after = page.lines[-1].seq + 1
    assert seqs == list(range(20_000))
    assert list((tmp_path / "logs").iterdir()) == [job.log.spill.path]
    book.close()
    assert not any((tmp_path / "logs").iterdir())


@pytest.mark.adversarial
def test_a_chunk_that_skips_bytes_or_is_not_a_log_cuts_the_log_there(tmp_path: Path) -> None:
    book = JobBook(logs_dir=tmp_path / "logs")
    data = worker_log(tmp_path, 3_000)  # records of 100,018 bytes
    for job_id, bad in (
        ("job_gap_0001", JobLogChunk(job_id="job_gap_0001", offset=300_000, data=data[300_000:])),
        ("job_junk_001", JobLogChunk(job_id="job_junk_001", offset=200_036, data=b"\x00" * 64)),
    ):
        book.start(request(job_id))
        book.log_chunk(JobLogChunk(job_id=job_id, offset=0, data=data[:200_036]))
        kept = book.get(job_id).next_seq
        book.log_chunk(bad)
        book.log_chunk(JobLogChunk(job_id=job_id, offset=200_036, data=data[200_036:]))
        job = book.get(job_id)
        assert job.next_seq == kept > 0 and "log cut" in job.status().detail
        book.end(JobEnded(job_id=job_id, result=result(""), log_bytes=len(data)))
        assert job.log_done


def test_a_lost_worker_completes_the_logs_it_still_owed(tmp_path: Path) -> None:
    book = JobBook(logs_dir=tmp_path / "logs")
    book.start(request("job_owed_001"))
    data = worker_log(tmp_path, 2_000)
    book.log_chunk(JobLogChunk(job_id="job_owed_001", offset=0, data=data[:50_000]))
    book.end(JobEnded(job_id="job_owed_001", result=result(""), log_bytes=len(data)))
    assert not book.get("job_owed_001").log_done

    assert book.lose_worker(WORKER, "gone") == []  # it had ended: not lost, only its log
    job = book.get("job_owed_001")
    assert job.state is RunState.SUCCEEDED and job.log_done
    assert f"{len(data) - 50_000} bytes of log never arrived" in job.status().detail


def test_a_forgotten_job_takes_its_log_file_with_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("byteleap.miner.jobs.MAX_FINISHED_JOBS", 1)
    book = JobBook(logs_dir=tmp_path / "logs")
    data = worker_log(tmp_path, 100)
    paths = []
    for job_id in ("job_forget_1", "job_forget_2", "job_forget_3"):
        book.start(request(job_id))
        book.log_chunk(JobLogChunk(job_id=job_id, offset=0, data=data))
        book.end(JobEnded(job_id=job_id, result=result(""), log_bytes=len(data)))
        paths.append(book.get(job_id).log.spill.path)
    assert [p.exists() for p in paths] == [False, True, True]
    assert book.find("job_forget_1") is None and book.log_bytes == 2 * len(data)
    # A finished job asked again starts a new log; the old file goes.
    book.start(request("job_forget_3").model_copy(update={"attempt": 2}))
    assert not paths[2].exists() and book.get("job_forget_3").next_seq == 0


def test_a_finished_job_keeps_and_reports_a_small_tail() -> None:
    book = JobBook()
    book.start(request("job_bigtail"))
    huge = "".join(f"line {i}\n" for i in range(2_000_000))  # ~15 MB of stdout tail
    book.end(JobEnded(job_id="job_bigtail", result=result(huge, stderr="é" * 100_000)))

    kept = book.get("job_bigtail").result
    assert kept is not None
    tail = kept.result.stdout_tail
    assert len(tail.encode()) <= MAX_STATUS_TAIL_BYTES and huge.endswith(tail)
    # every byte is still counted: what was cut is counted dropped
    assert kept.result.stdout_dropped_bytes == 5 + len(huge.encode()) - len(tail.encode())
    stderr = kept.result.stderr_tail
    assert len(stderr.encode()) <= MAX_STATUS_TAIL_BYTES and set(stderr) == {"é"}
    assert kept.result.stderr_dropped_bytes == 200_000 - len(stderr.encode())
    status = book.get("job_bigtail").status()
    assert status.result is not None and status.result.stdout_tail == tail


def test_a_status_read_from_an_older_miner_is_clipped_not_refused() -> None:
    big = JobStatus(
        job_id="job_oldminer", attempt=1, worker_id=WORKER, state=RunState.SUCCEEDED
    ).model_dump(mode="json")
    big["result"] = result("y" * (1 << 20)).model_dump(mode="json")
    status = JobStatus.model_validate(big)
    assert status.result is not None
    assert len(status.result.stdout_tail) == MAX_STATUS_TAIL_BYTES


# -- a cancel the worker never confirms ------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[tuple[MinerNode, Clock, str, list[str]]]:
    clock = Clock()
    ledger = MinerLedger(tmp_path / "miner.db")
    miner = MinerNode("5Miner", TLS_KEY, ledger, heartbeat_s=5.0, missed_heartbeats=3, clock=clock)
    key = Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    token = ledger.new_token(TLS_KEY, ttl_s=600)
    enroll = Enroll(token=token, public_key=key.hex(), hardware=gpu_rig(1))
    entry = miner.admit(enroll, secrets.token_hex(32), "10.0.0.7")
    sent: list[str] = []

    async def send(text: str) -> None:  # a wedged worker: reads, never answers
        sent.append(text)

    link = miner.attach(entry.worker_id, send)
    yield miner, clock, entry.worker_id, sent
    await link.close("test over")
    ledger.close()


@pytest.mark.adversarial
async def test_a_cancel_never_confirmed_frees_the_worker_in_bounded_time(
    node: tuple[MinerNode, Clock, str, list[str]],
) -> None:
    miner, clock, worker_id, _ = node
    miner.submit_job(request("job_wedged_1", worker_id), caller="gw")
    assert miner.registry.get(worker_id).state is WorkerState.BUSY

    assert miner.cancel_job("job_wedged_1").state is RunState.RUNNING
    clock.now += CANCEL_GRACE_S / 2
    miner.end_unconfirmed_cancels()
    assert miner.registry.get(worker_id).state is WorkerState.BUSY  # it may still answer
    clock.now += CANCEL_GRACE_S
    miner.end_unconfirmed_cancels()

    status = miner.jobs.get("job_wedged_1").status()
    assert status.state is RunState.CANCELLED and "did not confirm" in status.detail
    assert miner.registry.get(worker_id).state is WorkerState.IDLE
    # A late word from the worker changes nothing.
    miner.on_job_message(JobRefused(job_id="job_wedged_1", reason="worker_error"))
    assert miner.jobs.get("job_wedged_1").state is RunState.CANCELLED


async def test_a_confirmed_cancel_is_not_ended_twice(
    node: tuple[MinerNode, Clock, str, list[str]],
) -> None:
    miner, clock, worker_id, _ = node
    miner.submit_job(request("job_cancel_ok", worker_id), caller="gw")
    miner.cancel_job("job_cancel_ok")
    miner.on_job_message(JobRefused(job_id="job_cancel_ok", reason="worker_error", detail="x"))
    assert miner.registry.get(worker_id).state is WorkerState.IDLE
    clock.now += 2 * CANCEL_GRACE_S
    miner.end_unconfirmed_cancels()
    assert miner.jobs.get("job_cancel_ok").state is RunState.REFUSED
