"""A job's whole log leaves the worker: spilled to a file under the worker's home as the program
prints, sent to the miner in chunks from there, capped per job (the cut said in a last line),
its end told as soon as the program ends, and its file deleted once sent."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from byteleap.config import JobLogSettings
from byteleap.net.job_log import Record, RecordScanner, split_lines
from byteleap.net.messages import (
    LOG_CHUNK_BYTES,
    MAX_STATUS_TAIL_BYTES,
    JobEnded,
    JobLogChunk,
    JobRequest,
    parse_worker_message,
)
from byteleap.protocol.execution import ExecutionResult, ExecutionSpec, ExecutionState, LogLine
from byteleap.worker.executors import Execution
from byteleap.worker.jobs import LOG_DIR, JobRunner

WORKER = "w-0123456789abcdef"


def request(code: str, job_id: str = "job_logs_0001") -> JobRequest:
    spec = ExecutionSpec(command=[sys.executable, "-c", code], timeout_s=60)
    return JobRequest(job_id=job_id, attempt=1, worker_id=WORKER, spec=spec)


class Miner:
    """What the miner is sent, in order; each send takes ``delay_s`` (a slow link)."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.messages: list[object] = []
        self.delay_s = delay_s

    async def __call__(self, raw: str) -> None:
        await asyncio.sleep(self.delay_s)
        self.messages.append(parse_worker_message(raw))

    def chunks(self) -> list[JobLogChunk]:
        return [m for m in self.messages if isinstance(m, JobLogChunk)]

    def ended(self) -> JobEnded:
        (ended,) = [m for m in self.messages if isinstance(m, JobEnded)]
        return ended

    def records(self) -> list[Record]:
        chunks = self.chunks()
        assert [c.offset for c in chunks] == [
            sum(len(c.data) for c in chunks[:i]) for i in range(len(chunks))
        ]
        scanner = RecordScanner()
        got = [r for c in chunks for r in scanner.feed(c.data)]
        assert scanner.pending == 0
        return got

    def lines(self, stream: str = "stdout") -> list[bytes]:
        return [
            line for r in self.records() if r.stream == stream for line in split_lines(r.payload)
        ]


NUMBERED = (
    "import sys\n"
    "for i in range({n}):\n"
    "    sys.stdout.write(f'{{i:08d}} ' + 'n' * 91 + '\\n')\n"
    "print('to stderr', file=sys.stderr)\n"
)


async def test_every_line_reaches_the_miner_in_order_and_the_file_goes(tmp_path: Path) -> None:
    runner, miner = JobRunner(tmp_path), Miner()
    await runner.run(request(NUMBERED.format(n=50_000)), miner)  # 5 MB

    lines = miner.lines()
    assert len(lines) == 50_000 and lines[0].startswith(b"00000000 ")
    assert all(line[:8] == b"%08d" % i for i, line in enumerate(lines))
    assert miner.lines("stderr") == [b"to stderr"]
    chunks = miner.chunks()
    assert all(len(c.data) <= LOG_CHUNK_BYTES for c in chunks) and len(chunks) < 50
    ended = miner.ended()
    assert ended.log_bytes == sum(len(c.data) for c in chunks)
    assert len(ended.result.stdout_tail.encode()) <= MAX_STATUS_TAIL_BYTES
    assert ended.result.stdout_tail.endswith("n" * 91 + "\n")
    assert not any((tmp_path / LOG_DIR).iterdir())


async def test_a_job_over_its_cap_sends_the_head_and_says_what_was_dropped(
    tmp_path: Path,
) -> None:
    caps = JobLogSettings(max_job_bytes=1 << 20)
    runner, miner = JobRunner(tmp_path, log_caps=caps), Miner()
    await runner.run(request(NUMBERED.format(n=30_000)), miner)  # 3 MB: lines of 101 bytes

    assert miner.ended().log_bytes == sum(len(c.data) for c in miner.chunks())
    lines = miner.lines()
    assert 9_000 < len(lines) < 10_500 and lines[-1].startswith(b"%08d" % (len(lines) - 1))
    *_, note = miner.lines("stderr")
    dropped = 30_000 * 101 + len("to stderr\n") - sum(len(r.payload) for r in miner.records()[:-1])
    assert note.decode().startswith(f"[byteleap] {dropped} bytes of output dropped")


async def test_the_end_is_told_before_a_slow_link_has_taken_the_whole_log(tmp_path: Path) -> None:
    runner, miner = JobRunner(tmp_path), Miner(delay_s=0.05)
    await runner.run(request(NUMBERED.format(n=200_000)), miner)  # 20 MB, 1 s to send

    kinds = [type(m).__name__ for m in miner.messages]
    ended_at = kinds.index("JobEnded")
    assert "JobLogChunk" in kinds[ended_at + 1 :]  # the rest of the log follows the end
    assert len(miner.lines()) == 200_000


async def test_a_chatty_slow_program_costs_a_few_messages_a_second(tmp_path: Path) -> None:
    code = "import time\nfor i in range(40):\n    print(i, flush=True)\n    time.sleep(0.02)\n"
    runner, miner = JobRunner(tmp_path, flush_s=0.2), Miner()
    await runner.run(request(code), miner)
    assert [int(line) for line in miner.lines()] == list(range(40))
    assert len(miner.chunks()) <= 10


def test_logs_a_previous_run_left_are_cleared(tmp_path: Path) -> None:
    stale = tmp_path / LOG_DIR / "job_gone_0001-1.log"
    stale.parent.mkdir()
    stale.write_bytes(b"x" * 1000)
    JobRunner(tmp_path)
    assert not stale.exists()


class LinesOnly:
    """An execution that hands over its output as lines only (no ``record``)."""

    @property
    def pid(self) -> int:
        return 1

    async def logs(self) -> AsyncIterator[LogLine]:
        for i in range(3):
            yield LogLine(stream="stdout", line=f"line {i}", ts=datetime.now(UTC))

    async def wait(self) -> ExecutionResult:
        now = datetime.now(UTC)
        return ExecutionResult(
            exit_code=0, state=ExecutionState.SUCCEEDED, stdout_tail="", stderr_tail="",
            stdout_dropped_bytes=0, stderr_dropped_bytes=0, started_at=now, finished_at=now,
            artifacts=[],
        )  # fmt: skip

    async def cancel(self) -> ExecutionResult:
        return await self.wait()


class Starts:
    name = "process"
    unsupported: dict[str, str] = {}  # noqa: RUF012

    async def start(self, spec: ExecutionSpec, workdir: Path) -> Execution:
        return LinesOnly()


async def test_an_execution_that_gives_lines_only_still_has_its_log_sent(tmp_path: Path) -> None:
    runner, miner = JobRunner(tmp_path, executors=lambda _: Starts()), Miner()
    await runner.run(request("unused"), miner)
    assert miner.lines() == [b"line 0", b"line 1", b"line 2"]


@pytest.mark.adversarial
async def test_a_dead_link_leaves_no_file_behind(tmp_path: Path) -> None:
    async def dead(_: str) -> None:
        raise ConnectionError("gone")

    runner = JobRunner(tmp_path)
    await runner.run(request(NUMBERED.format(n=20_000)), dead)
    assert not runner.running and not any((tmp_path / LOG_DIR).iterdir())
