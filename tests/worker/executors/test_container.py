"""The container executor against real containers (marker ``container``), and its pure parts.

The image is the local busybox one built by ``conftest.test_image``; every container a test
starts must be gone when its execution ends, whatever the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import textwrap
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.worker.executors import (
    UNAVAILABLE,
    BadSpecError,
    ContainerEngine,
    ContainerExecution,
    ContainerExecutor,
    ContainerOptions,
    ContainerSettings,
    ExecutionSpec,
    ExecutionState,
    ExecutorError,
    InputFile,
    StartFailedError,
    UnavailableExecutorError,
    UnsupportedError,
    container_engine,
    executor_for,
)
from byteleap.worker.executors.base import parse_spec
from byteleap.worker.executors.container_create import LABEL_EXECUTION, LABEL_EXECUTOR, create_argv
from byteleap.worker.executors.container_engine import FEATURE_GPUS, parse_ulimits
from byteleap.worker.input_cache import InputCache
from file_server import FileServer, serving

container = pytest.mark.container


@pytest.fixture
def executor(test_image: str) -> ContainerExecutor:
    settings = ContainerSettings.from_env().model_copy(
        update={"image": test_image, "pull": "never"}
    )
    return ContainerExecutor(settings, kill_grace_s=0.5, poll_s=0.05)


@pytest.fixture
async def started() -> AsyncIterator[list[ContainerExecution]]:
    """Executions a test starts; any still running at the end is cancelled."""
    executions: list[ContainerExecution] = []
    yield executions
    for execution in executions:
        await execution.cancel()


def spec(command: list[str], **fields: Any) -> ExecutionSpec:
    return parse_spec({"command": command, "timeout_s": 30, **fields})


def containers(engine: ContainerEngine, label: str) -> list[str]:
    """Names of the containers, running or not, that carry ``label``."""
    argv = engine.argv("ps", "--all", "--filter", f"label={label}", "--format", "{{.Names}}")
    listed = subprocess.run(argv, capture_output=True, text=True, check=True)
    return listed.stdout.split()


def gone(execution: ContainerExecution) -> bool:
    return containers(execution.engine, f"{LABEL_EXECUTION}={execution.execution_id}") == []


SUCCESS_SCRIPT = textwrap.dedent(
    """
    echo "greeting $GREETING $1"
    echo "secret ${BYTELEAP_TEST_SECRET:-absent}"
    echo "home $HOME cwd $(pwd) gpus $NVIDIA_VISIBLE_DEVICES"
    echo "warning on stderr" >&2
    mkdir artifacts/sub
    echo "$(wc -c < data/in.bin) bytes" > artifacts/result.txt
    cp data/in.bin artifacts/sub/copy.bin
    ln -s /etc/passwd artifacts/link
    """
)


@container
async def test_success_with_env_inputs_and_artifacts(
    executor: ContainerExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BYTELEAP_TEST_SECRET", "worker-only")
    payload = bytes(range(256)) * 3
    job = spec(
        ["sh", "main.sh", "argument one"],
        env={"GREETING": "hello", "NVIDIA_VISIBLE_DEVICES": "all"},
        inputs={
            "main.sh": SUCCESS_SCRIPT,
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
        "home /work cwd /work gpus void",
    ]
    assert result.stderr_tail == "warning on stderr\n"
    result_text = b"768 bytes\n"
    assert [(a.path, a.size, a.sha256) for a in result.artifacts] == [
        ("result.txt", len(result_text), hashlib.sha256(result_text).hexdigest()),
        ("sub/copy.bin", len(payload), hashlib.sha256(payload).hexdigest()),
    ]
    assert result.started_at <= result.finished_at
    assert execution.name == f"byteleap-{execution.execution_id}"
    assert gone(execution)


@container
async def test_executable_input_runs_directly(executor: ContainerExecutor, tmp_path: Path) -> None:
    script = InputFile(content='#!/bin/sh\necho "from $0"\n', executable=True)
    job = spec(["./bin/run.sh"], inputs={"bin/run.sh": script.model_dump()})
    result = await (await executor.start(job, tmp_path)).wait()

    assert result.state == ExecutionState.SUCCEEDED, result.stderr_tail
    assert result.stdout_tail == "from ./bin/run.sh\n"


@container
async def test_a_url_input_is_copied_in_from_the_cache(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    payload = b"fetched by url\n" * 1000
    with serving(FileServer(files={"in": payload})) as server:
        cache = InputCache(tmp_path / "cache", allow_private=True)
        file = InputFile.from_url(server.url("/f/in"), hashlib.sha256(payload).hexdigest())
        job = spec(
            ["sh", "-c", "sha256sum data/in.bin; echo x >> data/in.bin"],
            inputs={"data/in.bin": file.model_dump()},
        )
        async with cache.pinned(job.inputs) as fetched:
            execution = await executor.start(job, tmp_path / "work", fetched=fetched)
        result = await execution.wait()

    assert result.state == ExecutionState.SUCCEEDED, result.stderr_tail
    assert result.stdout_tail.split()[0] == file.sha256
    assert cache.path_of(file.sha256 or "").read_bytes() == payload  # the job wrote its copy


@container
async def test_non_zero_exit_is_failed(executor: ContainerExecutor, tmp_path: Path) -> None:
    execution = await executor.start(spec(["sh", "-c", "exit 3"]), tmp_path)
    result = await execution.wait()

    assert result.state == ExecutionState.FAILED
    assert result.exit_code == 3 and result.killed_by is None
    assert "status 3" in result.detail
    assert gone(execution)


@container
async def test_timeout_stops_and_removes_the_container(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    job = spec(["sh", "-c", "echo started; sleep 60"], timeout_s=1)
    execution = await executor.start(job, tmp_path)
    result = await execution.wait()

    assert result.state == ExecutionState.TIMED_OUT and result.killed_by == "timeout"
    assert result.exit_code != 0 and "timed out after 1 s" in result.detail
    assert result.stdout_tail == "started\n"
    assert gone(execution)


@container
async def test_cancel_while_following_live_logs(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    job = spec(["sh", "-c", "echo ready; echo also >&2; sleep 60"])
    execution = await executor.start(job, tmp_path)
    seen = []
    async for line in execution.logs():
        seen.append((line.stream, line.line))
        if len(seen) == 2:
            break
    result = await execution.cancel()

    assert sorted(seen) == [("stderr", "also"), ("stdout", "ready")]
    assert result.state == ExecutionState.CANCELLED and result.killed_by == "cancel"
    assert gone(execution)
    assert await execution.cancel() == result  # idempotent
    assert [line.line async for line in execution.logs()] != []  # the kept lines, then the end


@container
@pytest.mark.parametrize(
    ("spec_network", "option_network", "interfaces"),
    [
        ("host", None, ["lo"]),  # the default: no network unless asked
        ("none", "bridge", ["lo"]),  # a spec asking for isolation always gets it
        ("host", "bridge", ["eth0", "lo"]),
    ],
)
async def test_network_is_off_unless_asked(
    executor: ContainerExecutor,
    tmp_path: Path,
    spec_network: str,
    option_network: str | None,
    interfaces: list[str],
) -> None:
    job = spec(["sh", "-c", "ls /sys/class/net"], network=spec_network)
    options = ContainerOptions.parse({"network": option_network})
    result = await (await executor.start(job, tmp_path, options)).wait()

    assert result.state == ExecutionState.SUCCEEDED, result.stderr_tail
    assert sorted(result.stdout_tail.split()) == interfaces


@container
async def test_memory_limit_kill_is_detected(
    executor: ContainerExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # conmon drops an ``oom`` file into its cwd on a memory kill: the worker's cwd must stay
    # clean (the suite once left one in the repository root).
    worker_cwd = tmp_path / "worker-cwd"
    worker_cwd.mkdir()
    monkeypatch.chdir(worker_cwd)
    script = 'x=$(head -c 67108864 /dev/zero | tr "\\0" a); echo survived'
    workdir = tmp_path / "work"
    execution = await executor.start(spec(["sh", "-c", script], memory_limit_mib=16), workdir)
    result = await execution.wait()

    assert result.state == ExecutionState.FAILED and result.killed_by == "memory"
    assert result.exit_code == 137 and "16 MiB" in result.detail
    assert "survived" not in result.stdout_tail
    assert gone(execution)
    assert list(worker_cwd.iterdir()) == []


LIMITS_SCRIPT = textwrap.dedent(
    """
    cat /sys/fs/cgroup/pids.max /sys/fs/cgroup/pids/pids.max 2>/dev/null
    cat /sys/fs/cgroup/cpu.max 2>/dev/null || cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us
    ulimit -t
    grep CapEff /proc/self/status
    """
)


@container
async def test_limits_apply_inside_the_container(test_image: str, tmp_path: Path) -> None:
    settings = ContainerSettings.from_env().model_copy(
        update={"image": test_image, "pull": "never", "pids_limit": 64}
    )
    executor = ContainerExecutor(settings)
    job = spec(["sh", "-c", LIMITS_SCRIPT], cpu_time_limit_s=7)
    result = await (await executor.start(job, tmp_path, ContainerOptions(cpus=0.5))).wait()

    assert result.state == ExecutionState.SUCCEEDED, result.stderr_tail
    pids, quota, cpu_seconds, caps = result.stdout_tail.splitlines()
    assert pids == "64"
    assert quota.split()[0] == "50000"  # half of the default 100 ms period
    assert cpu_seconds == "7"
    assert caps.split() == ["CapEff:", "0000000000000000"]


@container
async def test_output_is_bounded(executor: ContainerExecutor, tmp_path: Path) -> None:
    script = 'i=0; while [ $i -lt 2000 ]; do echo "line-$i-padding"; i=$((i+1)); done'
    result = await (
        await executor.start(spec(["sh", "-c", script], max_output_bytes=1000), tmp_path)
    ).wait()

    assert result.state == ExecutionState.SUCCEEDED
    assert 0 < len(result.stdout_tail) <= 1000
    assert result.stdout_tail.endswith("line-1999-padding\n")
    total = sum(len(f"line-{i}-padding\n") for i in range(2000))
    assert result.stdout_dropped_bytes == total - len(result.stdout_tail)


@container
@pytest.mark.parametrize(
    ("init", "command", "options"),
    [
        (False, ["/no/such/program"], {}),  # the runtime cannot exec it
        (True, ["true"], {"image": "localhost/byteleap-test:absent"}),  # no image, no pull
    ],
)
async def test_start_failure_leaves_nothing(
    executor: ContainerExecutor,
    tmp_path: Path,
    init: bool,
    command: list[str],
    options: dict[str, Any],
) -> None:
    executor.settings = executor.settings.model_copy(update={"init": init})
    engine = await executor.engine()
    before = containers(engine, f"{LABEL_EXECUTOR}=container")
    with pytest.raises(StartFailedError) as caught:
        await executor.start(spec(command), tmp_path / "work", ContainerOptions(**options))

    assert caught.value.reason == "start_failed"
    assert containers(engine, f"{LABEL_EXECUTOR}=container") == before


@container
async def test_missing_program_under_an_init_is_a_failed_run(
    test_image: str, tmp_path: Path
) -> None:
    settings = ContainerSettings.from_env().model_copy(
        update={"image": test_image, "pull": "never", "init": True}
    )
    execution = await ContainerExecutor(settings).start(spec(["/no/such/program"]), tmp_path)
    result = await execution.wait()

    # The init started, so the container did; only the init sees that the exec failed.
    assert result.state == ExecutionState.FAILED and result.exit_code != 0
    assert "No such file" in result.stderr_tail
    assert gone(execution)


@container
@pytest.mark.parametrize(
    "job",
    [
        ExecutionSpec.model_construct(command=[], timeout_s=5.0),
        ExecutionSpec.model_construct(command=["true"], timeout_s=-1.0),
        ExecutionSpec.model_construct(command=["true"], timeout_s=5.0, env={"A=B": "c"}),
    ],
)
async def test_bad_spec_starts_nothing(
    executor: ContainerExecutor, tmp_path: Path, job: ExecutionSpec
) -> None:
    engine = await executor.engine()
    before = containers(engine, f"{LABEL_EXECUTOR}=container")
    with pytest.raises(BadSpecError) as caught:
        await executor.start(job, tmp_path / "work")

    assert caught.value.reason == "bad_spec"
    assert not (tmp_path / "work").exists()
    assert containers(engine, f"{LABEL_EXECUTOR}=container") == before


@pytest.mark.parametrize(
    "options",
    [
        {"image": "--privileged"},
        {"image": "has space:1"},
        {"mounts": [{"source": "/srv/models", "target": "/work/models"}]},
        {"mounts": [{"source": "/srv/models", "target": "/"}]},
        {"mounts": [{"source": "relative", "target": "/models"}]},
        {"mounts": [{"source": "/a,b", "target": "/models"}]},
        {"cpus": 0},
        {"network": "host"},
    ],
)
def test_bad_container_options(options: dict[str, Any]) -> None:
    with pytest.raises(BadSpecError) as caught:
        ContainerOptions.parse(options)
    assert caught.value.reason == "bad_spec"


@container
async def test_gpus_without_a_gpu_runtime_are_unsupported(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    engine = await executor.engine()
    if FEATURE_GPUS not in engine.unsupported:
        pytest.skip("this host can give containers GPUs; the refusal cannot happen here")
    with pytest.raises(UnsupportedError) as caught:
        await executor.start(spec(["true"], gpus=[0]), tmp_path / "work")

    assert caught.value.context["feature"] == "gpus"
    assert not (tmp_path / "work").exists()


async def test_missing_image_setting_is_a_bad_spec(tmp_path: Path) -> None:
    executor = ContainerExecutor(ContainerSettings(engine="/nonexistent/podman"))
    with pytest.raises(BadSpecError, match="no image"):
        await executor.start(spec(["true"]), tmp_path / "work")
    assert not (tmp_path / "work").exists()


async def test_missing_engine_is_a_clear_error(tmp_path: Path) -> None:
    settings = ContainerSettings(engine="/nonexistent/podman", image="localhost/any:1")
    with pytest.raises(UnavailableExecutorError) as caught:
        await ContainerExecutor(settings).start(spec(["true"]), tmp_path / "work")

    assert isinstance(caught.value, ExecutorError) and caught.value.reason == "unavailable"
    assert "/nonexistent/podman" in str(caught.value)
    assert not (tmp_path / "work").exists()


def test_container_executor_by_name() -> None:
    assert "container" not in UNAVAILABLE
    chosen = executor_for("container")
    assert isinstance(chosen, ContainerExecutor) and chosen.name == "container"


# --- the pure parts: settings and the create command line -------------------------------


def _engine(kind: str) -> ContainerEngine:
    return ContainerEngine(
        kind=kind,  # type: ignore[arg-type]
        path=f"/usr/bin/{kind}",
        version="test",
        global_args=("--runtime=/usr/sbin/runc",) if kind == "podman" else (),
        create_args=("--init",),
        ulimits={"nofile": (1024, 1024), "cpu": (100, 100)},
        unsupported={},
    )


def _argv(kind: str, job: ExecutionSpec, **options: Any) -> list[str]:
    return create_argv(
        _engine(kind),
        ContainerSettings(image="localhost/img:1"),
        job,
        ContainerOptions(**options),
        workdir=Path("/tmp/w"),
        name="byteleap-x",
        execution_id="x",
        user=(1000, 1000),
    )


@pytest.mark.parametrize(
    ("kind", "expected", "absent"),
    [
        (
            "podman",
            [
                "--device=nvidia.com/gpu=0",
                "--device=nvidia.com/gpu=2",
                "--env=NVIDIA_VISIBLE_DEVICES=void",
            ],
            ["--user=1000:1000"],
        ),
        (
            "docker",
            ['--gpus="device=0,2"', "--env=NVIDIA_VISIBLE_DEVICES=0,2", "--user=1000:1000"],
            [],
        ),
    ],
)
def test_create_argv_per_engine(kind: str, expected: list[str], absent: list[str]) -> None:
    job = spec(
        ["python", "-c", "print(1)"],
        gpus=[0, 2],
        memory_limit_mib=512,
        cpu_time_limit_s=10,
        env={"NVIDIA_VISIBLE_DEVICES": "all"},
    )
    argv = _argv(kind, job, cpus=1.5)

    assert argv[-4:] == ["localhost/img:1", "python", "-c", "print(1)"]
    engine = _engine(kind)
    assert argv[: argv.index("create")] == [engine.path, *engine.global_args]
    for flag in [*expected, "--memory=512m", "--memory-swap=512m", "--cpus=1.5", "--network=none"]:
        assert flag in argv
    assert "--ulimit=cpu=10:15" in argv and "--ulimit=cpu=100:100" not in argv
    assert "--env=NVIDIA_VISIBLE_DEVICES=all" not in argv
    assert not set(absent) & set(argv)


@given(
    env=st.dictionaries(
        st.text(st.characters(blacklist_characters="=\x00"), min_size=1, max_size=8),
        st.text(st.characters(blacklist_characters="\x00"), max_size=20),
        max_size=5,
    ),
    command=st.lists(st.text(st.characters(blacklist_characters="\x00"), max_size=10), max_size=4),
)
def test_create_argv_passes_env_and_command_verbatim(
    env: dict[str, str], command: list[str]
) -> None:
    job = spec(["prog", *command], env=env)
    argv = _argv("podman", job)

    assert argv[-len(job.command) - 1 :] == ["localhost/img:1", *job.command]
    for key, value in env.items():
        if key not in {"HOME", "NVIDIA_VISIBLE_DEVICES"}:
            assert f"--env={key}={value}" in argv


def test_parse_ulimits() -> None:
    assert parse_ulimits("nofile=1024:2048, nproc=512") == {
        "nofile": (1024, 2048),
        "nproc": (512, 512),
    }
    assert parse_ulimits("none") == {} and parse_ulimits("") == {}
    with pytest.raises(ValueError):
        parse_ulimits("nofile")


def test_settings_from_env() -> None:
    settings = ContainerSettings.from_env(
        {
            "BYTELEAP_CONTAINER_ENGINE": "docker",
            "BYTELEAP_CONTAINER_ULIMITS": "nofile=1024:1024",
            "BYTELEAP_CONTAINER_PIDS_LIMIT": "128",
            "BYTELEAP_CONTAINER_NETWORK": "bridge",
        }
    )
    assert settings.engine == "docker" and settings.pids_limit == 128
    assert settings.ulimits == {"nofile": (1024, 1024)} and settings.network == "bridge"
    assert ContainerSettings.from_env({}).ulimits is None
    with pytest.raises(ExecutorError, match="BYTELEAP_CONTAINER"):
        ContainerSettings.from_env({"BYTELEAP_CONTAINER_NETWORK": "host"})


def test_cdi_dirs_decide_whether_podman_gives_gpus(tmp_path: Path) -> None:
    """podman reads GPU devices from CDI specs; where the worker (and `byteleap doctor`) look
    for them is BYTELEAP_CONTAINER_CDI_DIRS, /etc/cdi and /var/run/cdi by default."""
    empty, full = tmp_path / "empty", tmp_path / "full"
    empty.mkdir()
    full.mkdir()
    (full / "nvidia.yaml").write_text("cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ndevices: []\n")
    settings = ContainerSettings.from_env({"BYTELEAP_CONTAINER_CDI_DIRS": f"{empty}:{full}"})
    assert settings.cdi_dirs == (empty, full)
    assert ContainerSettings.from_env({}).cdi_dirs == (Path("/etc/cdi"), Path("/var/run/cdi"))
    assert container_engine.nvidia_cdi_specs(settings.cdi_dirs) == [full / "nvidia.yaml"]
    assert container_engine._gaps("podman", (full,)) == {}
    assert container_engine._gaps("podman", (empty,)) == {
        FEATURE_GPUS: f"no CDI spec for nvidia.com/gpu in {empty} "
        "(create one with `nvidia-ctk cdi generate`)"
    }


@container
async def test_concurrent_executions_do_not_block_each_other(
    executor: ContainerExecutor, tmp_path: Path, started: list[ContainerExecution]
) -> None:
    slow = await executor.start(spec(["sleep", "60"]), tmp_path / "slow")
    started.append(slow)
    quick = await executor.start(spec(["echo", "quick"]), tmp_path / "quick")
    result = await asyncio.wait_for(quick.wait(), 20)

    assert result.stdout_tail == "quick\n"
    assert containers(slow.engine, f"{LABEL_EXECUTION}={slow.execution_id}") == [slow.name]


@container
async def test_lost_engine_cli_still_stops_the_container(
    executor: ContainerExecutor, tmp_path: Path
) -> None:
    execution = await executor.start(spec(["sleep", "60"]), tmp_path)
    os.kill(execution.pid, signal.SIGKILL)  # the attached CLI, not the container
    result = await asyncio.wait_for(execution.wait(), 20)

    assert result.state == ExecutionState.FAILED and result.killed_by is None
    assert "engine CLI" in result.detail
    assert gone(execution)
