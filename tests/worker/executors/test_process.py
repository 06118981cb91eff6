"""The process executor against real child processes."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from byteleap.worker.executors import (
    UNAVAILABLE,
    BadSpecError,
    ExecutionSpec,
    ExecutionState,
    Executor,
    ExecutorError,
    InputFile,
    ProcessExecutor,
    StartFailedError,
    UnavailableExecutorError,
    UnknownExecutorError,
    UnsupportedError,
    WorkdirError,
    executor_for,
)
from byteleap.worker.executors.base import parse_spec
from byteleap.worker.executors.process import ProcessExecution

PY = sys.executable
GRACE_S = 0.5


@pytest.fixture
def executor() -> ProcessExecutor:
    return ProcessExecutor(kill_grace_s=GRACE_S, poll_s=0.05)


@pytest.fixture
async def started() -> AsyncIterator[list[ProcessExecution]]:
    """Executions a test starts; any still running at the end is cancelled."""
    executions: list[ProcessExecution] = []
    yield executions
    for execution in executions:
        await execution.cancel()


def spec(command: list[str], **fields: Any) -> ExecutionSpec:
    return parse_spec({"command": command, "timeout_s": 30, **fields})


def gone(pid: int) -> bool:
    """No such process, or only a zombie (PID 1 here does not reap orphans)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


SUCCESS_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    print("greeting", os.environ["GREETING"], sys.argv[1])
    print("secret", os.environ.get("BYTELEAP_TEST_SECRET", "absent"))
    gpus = os.environ["CUDA_VISIBLE_DEVICES"]
    print("home", os.environ["HOME"] == os.getcwd(), "gpus", repr(gpus))
    print("warning on stderr", file=sys.stderr)
    data = Path("data/in.bin").read_bytes()
    Path("artifacts/sub").mkdir()
    Path("artifacts/result.txt").write_text(f"{len(data)} bytes, last {data[-1]}")
    Path("artifacts/sub/copy.bin").write_bytes(data)
    os.symlink("/etc/hostname", "artifacts/link")
    """
)


async def test_success_with_env_inputs_and_artifacts(
    executor: ProcessExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYTELEAP_TEST_SECRET", "worker-only")
    payload = bytes(range(256)) * 3
    job = spec(
        [PY, "main.py", "argument one"],
        env={"GREETING": "hello"},
        inputs={
            "main.py": SUCCESS_SCRIPT,
            "data/in.bin": InputFile.from_bytes(payload).model_dump(),
        },
    )
    execution = await executor.start(job, tmp_path / "work")
    result = await execution.wait()

    assert result.state == ExecutionState.SUCCEEDED, result.stderr_tail
    assert result.exit_code == 0 and result.killed_by is None
    assert result.stdout_tail.splitlines() == [
        "greeting hello argument one",
        "secret absent",
        "home True gpus ''",
    ]
    assert result.stderr_tail == "warning on stderr\n"
    assert result.stdout_dropped_bytes == result.stderr_dropped_bytes == 0
    result_text = b"768 bytes, last 255"
    assert [(a.path, a.size, a.sha256) for a in result.artifacts] == [
        ("result.txt", len(result_text), hashlib.sha256(result_text).hexdigest()),
        ("sub/copy.bin", len(payload), hashlib.sha256(payload).hexdigest()),
    ]
    assert result.started_at <= result.finished_at


async def test_executable_input_runs_directly(executor: ProcessExecutor, tmp_path: Path) -> None:
    script = InputFile(content='#!/bin/sh\necho "from $0"\n', executable=True)
    job = spec(["./bin/run.sh"], inputs={"bin/run.sh": script.model_dump()})
    result = await (await executor.start(job, tmp_path)).wait()

    assert result.state == ExecutionState.SUCCEEDED, result.stderr_tail
    assert result.stdout_tail == "from ./bin/run.sh\n"


async def test_non_zero_exit_is_failed(executor: ProcessExecutor, tmp_path: Path) -> None:
    execution = await executor.start(spec([PY, "-c", "raise SystemExit(3)"]), tmp_path)
    result = await execution.wait()

    assert result.state == ExecutionState.FAILED
    assert result.exit_code == 3 and result.killed_by is None
    assert "status 3" in result.detail


def _pid_line(text: str) -> int:
    return int(text.split()[0])


async def test_timeout_kills_the_whole_tree(executor: ProcessExecutor, tmp_path: Path) -> None:
    job = spec(["sh", "-c", "sleep 60 & echo $!; sleep 60"], timeout_s=0.5)
    execution = await executor.start(job, tmp_path)
    result = await execution.wait()

    assert result.state == ExecutionState.TIMED_OUT and result.killed_by == "timeout"
    assert result.exit_code < 0
    assert gone(execution.pid)
    assert gone(_pid_line(result.stdout_tail))


@pytest.mark.parametrize(
    ("script", "exit_code"),
    [
        ("sleep 60 & echo $!; wait", -15),  # SIGTERM is enough
        ("trap '' TERM; sleep 60 & echo $!; wait", -9),  # ignores SIGTERM: SIGKILL after grace
    ],
)
async def test_cancel_stops_the_process_group(
    executor: ProcessExecutor, tmp_path: Path, script: str, exit_code: int
) -> None:
    execution = await executor.start(spec(["sh", "-c", script]), tmp_path)
    lines = execution.logs()
    grandchild = _pid_line((await anext(lines)).line)
    await lines.aclose()
    assert not gone(grandchild)

    result = await execution.cancel()

    assert result.state == ExecutionState.CANCELLED and result.killed_by == "cancel"
    assert result.exit_code == exit_code
    assert gone(execution.pid) and gone(grandchild)
    assert await execution.cancel() == result  # cancelling an ended execution changes nothing


async def test_leftover_background_process_is_stopped(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    execution = await executor.start(spec(["sh", "-c", "sleep 60 & echo $!"]), tmp_path)
    result = await execution.wait()

    assert result.state == ExecutionState.SUCCEEDED
    assert gone(_pid_line(result.stdout_tail))


async def test_logs_arrive_while_running(executor: ProcessExecutor, tmp_path: Path) -> None:
    # The program cannot end before the test creates "go", so the lines are live for sure.
    script = textwrap.dedent(
        """
        import os, sys, time
        print("ready", flush=True)
        print("on stderr", file=sys.stderr, flush=True)
        while not os.path.exists("go"):
            time.sleep(0.02)
        print("done")
        """
    )
    work = tmp_path / "work"
    execution = await executor.start(spec([PY, "main.py"], inputs={"main.py": script}), work)
    seen: list[tuple[str, str]] = []
    async for line in execution.logs():
        seen.append((line.stream, line.line))
        if len(seen) == 2:
            assert not gone(execution.pid)
            (work / "go").touch()
    result = await execution.wait()

    assert sorted(seen[:2]) == [("stderr", "on stderr"), ("stdout", "ready")]
    assert seen[2:] == [("stdout", "done")]
    assert result.state == ExecutionState.SUCCEEDED
    replay = [(line.stream, line.line) async for line in execution.logs()]
    assert sorted(replay) == sorted(seen)


async def test_output_flood_is_bounded(executor: ProcessExecutor, tmp_path: Path) -> None:
    lines, width, no_newline = 20_000, 100, 300_000
    script = (
        f"import sys\nfor i in range({lines}): sys.stdout.write(str(i % 10) * {width} + '\\n')\n"
        f"sys.stderr.write('y' * {no_newline})\n"
    )
    job = spec([PY, "-c", script], max_output_bytes=4096)
    result = await (await executor.start(job, tmp_path)).wait()

    assert result.state == ExecutionState.SUCCEEDED
    kept = len(result.stdout_tail.encode())
    assert kept <= 4096
    assert kept + result.stdout_dropped_bytes == lines * (width + 1)
    assert result.stdout_tail.endswith("9" * width + "\n")
    assert len(result.stderr_tail) <= 4096
    assert len(result.stderr_tail) + result.stderr_dropped_bytes == no_newline


async def test_memory_limit_kills_the_tree(executor: ProcessExecutor, tmp_path: Path) -> None:
    script = (
        "import time\nblock = b'x' * (300 << 20)\nprint('allocated', flush=True)\ntime.sleep(30)"
    )
    job = spec([PY, "-c", script], memory_limit_mib=64)
    result = await (await executor.start(job, tmp_path)).wait()

    assert result.state == ExecutionState.FAILED
    assert result.killed_by == "memory"
    assert result.exit_code == -9  # SIGKILL at once: no grace for a tree eating the host
    assert "exceeded the limit of 64 MiB" in result.detail


async def test_cpu_time_limit(executor: ProcessExecutor, tmp_path: Path) -> None:
    job = spec([PY, "-c", "while True: pass"], cpu_time_limit_s=1)
    result = await (await executor.start(job, tmp_path)).wait()

    assert result.state == ExecutionState.FAILED and result.killed_by is None
    assert result.exit_code == -24  # SIGXCPU
    assert "CPU-time limit of 1 s" in result.detail


BAD_SPECS: list[dict[str, Any]] = [
    {"command": [], "timeout_s": 10},
    {"command": [""], "timeout_s": 10},
    {"command": ["echo", "a\x00b"], "timeout_s": 10},
    {"command": ["echo"], "timeout_s": 10, "inputs": {"../x": "escape"}},
    {"command": ["echo"], "timeout_s": 10, "inputs": {"a/../../x": "escape"}},
    {"command": ["echo"], "timeout_s": 10, "inputs": {"/tmp/x": "absolute"}},
    {"command": ["echo"], "timeout_s": 10, "inputs": {"a": "file", "a/b": "under a file"}},
    {"command": ["echo"], "timeout_s": 10, "artifacts_dir": "../out"},
    {"command": ["echo"], "timeout_s": 10, "inputs": {"out": "x"}, "artifacts_dir": "out"},
    {
        "command": ["echo"],
        "timeout_s": 10,
        "inputs": {"b": {"content": "%%", "encoding": "base64"}},
    },
    {"command": ["echo"], "timeout_s": 10, "env": {"A=B": "x"}},
    {"command": ["echo"], "timeout_s": 1e9},
    {"command": ["echo"], "timeout_s": 0},
    {"command": ["echo"], "timeout_s": float("nan")},
    {"command": ["echo"], "timeout_s": 10, "max_output_bytes": 0},
    {"command": ["echo"], "timeout_s": 10, "gpus": [0, 0]},
    {"command": "echo hello", "timeout_s": 10},
]


@pytest.mark.parametrize("data", BAD_SPECS)
def test_bad_spec_is_refused(data: dict[str, Any]) -> None:
    with pytest.raises(BadSpecError) as caught:
        parse_spec(data)
    assert caught.value.reason == "bad_spec"


@pytest.mark.parametrize(
    "fields",
    [
        {"command": [], "timeout_s": 10},
        {
            "command": ["touch", "started"],
            "timeout_s": 10,
            "inputs": {"../x": InputFile(content="")},
        },
        {"command": ["touch", "started"], "timeout_s": 1e9},
    ],
)
async def test_bad_spec_never_starts(
    executor: ProcessExecutor, tmp_path: Path, fields: dict[str, Any]
) -> None:
    # model_construct skips validation, as a spec from an old message or a careless caller could.
    unchecked = ExecutionSpec.model_construct(**fields)
    work = tmp_path / "work"
    with pytest.raises(BadSpecError):
        await executor.start(unchecked, work)
    assert not work.exists()
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("program", ["/nonexistent/program", "no-such-program-here", "./absent"])
async def test_unstartable_program(executor: ProcessExecutor, tmp_path: Path, program: str) -> None:
    # Also behind setpriv (the parent-death signal without a preexec_fn): a missing program
    # fails the start, it does not become setpriv's exit code 127.
    with pytest.raises(StartFailedError) as caught:
        await executor.start(spec([program]), tmp_path / "work")
    assert caught.value.reason == "start_failed"


async def test_work_dir_must_be_fresh(executor: ProcessExecutor, tmp_path: Path) -> None:
    (tmp_path / "leftover").touch()
    with pytest.raises(WorkdirError):
        await executor.start(spec(["true"]), tmp_path)


async def test_unsupported_feature_is_refused(executor: ProcessExecutor, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError) as caught:
        await executor.start(spec(["true"], network="none"), tmp_path / "work")
    assert caught.value.context["feature"] == "network_isolation"
    assert not (tmp_path / "work").exists()


def test_executor_by_name() -> None:
    chosen: Executor = executor_for("process")
    assert isinstance(chosen, ProcessExecutor)
    assert chosen.name == "process" and "network_isolation" in chosen.unsupported


@pytest.mark.parametrize("name", sorted(UNAVAILABLE))
def test_future_adapters_fail_with_their_reason(name: str) -> None:
    with pytest.raises(UnavailableExecutorError) as caught:
        executor_for(name)
    assert caught.value.reason == "unavailable"
    assert UNAVAILABLE[name] in str(caught.value)


def test_unknown_executor_name() -> None:
    with pytest.raises(UnknownExecutorError) as caught:
        executor_for("docker-swarm")
    assert isinstance(caught.value, ExecutorError)
    assert caught.value.reason == "unknown_executor"
    assert "'docker-swarm'" in str(caught.value) and "process" in str(caught.value)


async def test_concurrent_executions_do_not_block_each_other(
    executor: ProcessExecutor, tmp_path: Path, started: list[ProcessExecution]
) -> None:
    slow = await executor.start(spec(["sleep", "60"]), tmp_path / "slow")
    started.append(slow)
    quick = await executor.start(spec(["echo", "quick"]), tmp_path / "quick")
    result = await asyncio.wait_for(quick.wait(), 20)

    assert result.stdout_tail == "quick\n"
    assert not gone(slow.pid)
