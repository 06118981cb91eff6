"""The worker's job runner never lets a job's task die silently: whatever goes wrong is told to
the miner as a ``JobRefused`` with a reason, the program is stopped, and nothing is left running.
A cancel that comes while a job is starting stops it as soon as it is up."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import ClassVar

import pytest

from byteleap.net.messages import JobEnded, JobRefused, JobRequest, parse_worker_message
from byteleap.protocol.execution import ExecutionResult, ExecutionSpec, LogLine
from byteleap.worker.executors import Execution, Executor, ProcessExecutor
from byteleap.worker.jobs import JobRunner

WORKER = "w-0123456789abcdef"


def request(job_id: str = "job_runner_01", **fields: object) -> JobRequest:
    spec = ExecutionSpec(command=[sys.executable, "-c", "print('hi')"], timeout_s=20)
    return JobRequest.model_validate(
        {"job_id": job_id, "attempt": 1, "worker_id": WORKER, "spec": spec, **fields}
    )


class Sent:
    def __init__(self) -> None:
        self.messages: list[object] = []

    async def __call__(self, raw: str) -> None:
        self.messages.append(parse_worker_message(raw))

    def ends(self) -> list[JobEnded | JobRefused]:
        return [m for m in self.messages if isinstance(m, JobEnded | JobRefused)]


class BrokenExecution:
    """Started, then its wait breaks (a bug in an adapter, a lost engine)."""

    def __init__(self) -> None:
        self.cancelled = 0

    @property
    def pid(self) -> int:
        return 1

    async def logs(self) -> AsyncIterator[LogLine]:
        return
        yield

    async def wait(self) -> ExecutionResult:
        raise RuntimeError("the engine went away")

    async def cancel(self) -> ExecutionResult:
        self.cancelled += 1
        raise RuntimeError("and cannot be asked to stop")


class OddExecutor:
    name: ClassVar[str] = "process"
    unsupported: ClassVar[dict[str, str]] = {}

    def __init__(self, execution: Execution | None = None, gate: asyncio.Event | None = None):
        self.execution = execution
        self.gate = gate

    async def start(self, spec: ExecutionSpec, workdir: Path) -> Execution:
        if self.gate is not None:
            await self.gate.wait()
        if self.execution is None:
            raise KeyError("an adapter bug")
        return self.execution


@pytest.mark.adversarial
async def test_an_invalid_image_is_refused_not_left_running(tmp_path: Path) -> None:
    runner, sent = JobRunner(tmp_path), Sent()
    await runner.run(request(executor="container", image="x; rm -rf /"), sent)

    (ended,) = sent.ends()
    assert isinstance(ended, JobRefused) and ended.reason == "bad_spec"
    assert "image" in ended.detail
    assert not runner.running and not runner.starting


async def test_an_executor_that_raises_anything_refuses_the_job(tmp_path: Path) -> None:
    runner, sent = JobRunner(tmp_path, executors=lambda _: OddExecutor()), Sent()
    await runner.run(request(), sent)

    (ended,) = sent.ends()
    assert isinstance(ended, JobRefused) and ended.reason == "worker_error"
    assert "adapter bug" in ended.detail


async def test_a_run_that_breaks_is_reported_and_its_program_stopped(tmp_path: Path) -> None:
    broken = BrokenExecution()
    runner, sent = JobRunner(tmp_path, executors=lambda _: OddExecutor(broken)), Sent()
    await runner.run(request(), sent)

    (ended,) = sent.ends()
    assert isinstance(ended, JobRefused) and "engine went away" in ended.detail
    assert broken.cancelled == 1
    assert not runner.running and not (tmp_path / "jobs" / "job_runner_01-1").exists()


async def test_a_send_that_fails_does_not_raise_out_of_the_task(tmp_path: Path) -> None:
    async def dead_link(_: str) -> None:
        raise ConnectionError("gone")

    runner = JobRunner(tmp_path)
    await runner.run(request(executor="container", image="-v/:/host"), dead_link)
    assert not runner.running


async def test_a_cancel_while_starting_stops_the_job_once_up(tmp_path: Path) -> None:
    gate = asyncio.Event()
    real = ProcessExecutor()

    class Slow:
        name: ClassVar[str] = "process"
        unsupported: ClassVar[dict[str, str]] = {}

        async def start(self, spec: ExecutionSpec, workdir: Path) -> Execution:
            await gate.wait()
            return await real.start(spec, workdir)

    def slow(_: str) -> Executor:
        return Slow()

    runner, sent = JobRunner(tmp_path, executors=slow), Sent()
    sleeper = ExecutionSpec(
        command=[sys.executable, "-c", "import time; time.sleep(60)"], timeout_s=60
    )
    job = request(spec=sleeper)
    task = asyncio.create_task(runner.run(job, sent))
    await asyncio.sleep(0.05)
    await runner.cancel(job.job_id)
    gate.set()
    await asyncio.wait_for(task, timeout=20)

    (ended,) = sent.ends()
    assert isinstance(ended, JobEnded) and ended.result.state.value == "cancelled"
    assert not runner.cancelled and not runner.starting


async def test_a_cancel_of_an_unknown_job_is_not_remembered(tmp_path: Path) -> None:
    runner = JobRunner(tmp_path)
    await runner.cancel("job_never_started")
    assert not runner.cancelled
