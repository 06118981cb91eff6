"""A process job's every process runs in a cgroup of its own and ends with the job: setsid and
double forks included, whether the job exits, times out or is cancelled; and its cgroup is
gone afterwards. Without job cgroups, the fallback (the worker as child subreaper) still
catches double forks. Real processes and the host's cgroup v2 throughout."""

from __future__ import annotations

import contextlib
import ctypes
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from byteleap.worker.executors import ExecutionSpec, ExecutionState, ProcessExecutor
from byteleap.worker.executors.base import parse_spec
from byteleap.worker.executors.process_cgroup import (
    PARENT_PREFIX,
    JobCgroups,
    cgroup2_mount,
    end_cgroup,
    job_cgroups,
    join_argv,
    members,
    own_cgroup,
    populated,
)
from escapees import ESCAPEE, escape_script, running_with

PY = sys.executable
_PR_SET_CHILD_SUBREAPER = 36

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="cgroup v2: Linux")


@pytest.fixture
def cgroups() -> JobCgroups:
    """This process's job cgroups; skips only where cgroup v2 is missing or not writable."""
    found = job_cgroups()
    if not found.available:
        pytest.skip(f"no writable cgroup v2 here: {found.reason}")
    return found


@pytest.fixture
def marker() -> str:
    return f"escapee-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def no_escapees(marker: str) -> Iterator[None]:
    """Kills what a failing test left running, so one failure does not litter the host."""
    yield
    for pid in running_with(marker):
        with contextlib.suppress(psutil.Error):
            psutil.Process(pid).kill()


def escaping_job(marker: str, then: str, **fields: Any) -> ExecutionSpec:
    """A shell starting the three escapees, saying ``ready``, then running ``then``."""
    script = escape_script(PY, marker) + f"echo ready\n{then}\n"
    return parse_spec(
        {"command": ["sh", "-c", script], "timeout_s": 30, "inputs": {"escapee.py": ESCAPEE}}
        | fields
    )


def test_the_cgroup2_mount_is_found_from_the_mount_table() -> None:
    mounts = (
        "tmpfs /sys/fs/cgroup tmpfs rw 0 0\n"
        "cgroup /sys/fs/cgroup/memory cgroup rw,memory 0 0\n"
        "cgroup2 /sys/fs/cgroup/my\\040unified cgroup2 rw 0 0\n"
    )
    assert cgroup2_mount(mounts) == Path("/sys/fs/cgroup/my unified")
    assert cgroup2_mount("cgroup /sys/fs/cgroup/cpu cgroup rw 0 0\n") is None
    assert own_cgroup("9:name=systemd:/\n1:cpu:/x\n0::/system.slice/w.service\n") == (
        "/system.slice/w.service"
    )
    assert own_cgroup("1:cpu:/x\n") is None


def test_cgroups_are_found_on_this_host(cgroups: JobCgroups) -> None:
    mount = cgroup2_mount(Path("/proc/self/mounts").read_text())
    assert mount is not None and cgroups.base is not None
    assert cgroups.base.is_relative_to(mount) and cgroups.reason == ""


@pytest.mark.parametrize("ending", ["exit", "timeout", "cancel"])
async def test_no_process_of_a_job_outlives_it(
    cgroups: JobCgroups, tmp_path: Path, marker: str, no_escapees: None, ending: str
) -> None:
    executor = ProcessExecutor(kill_grace_s=0.5, poll_s=0.05)
    then = "" if ending == "exit" else "sleep 300"
    timeout = 3 if ending == "timeout" else 30
    execution = await executor.start(escaping_job(marker, then, timeout_s=timeout), tmp_path)
    cgroup = execution.cgroup
    assert cgroup is not None and cgroup.is_relative_to(cgroups.parent)
    lines = execution.logs()
    assert (await anext(lines)).line == "ready"
    await lines.aclose()
    escapees = running_with(marker)
    assert len(escapees) == 3 and set(members(cgroup)) >= escapees

    result = await (execution.cancel() if ending == "cancel" else execution.wait())

    expected = {"exit": "succeeded", "timeout": "timed_out", "cancel": "cancelled"}[ending]
    assert result.state == ExecutionState(expected), result.stderr_tail
    assert not running_with(marker), "a process of the job outlived it"
    assert not cgroup.exists()
    assert not cgroups.parent.exists(), "the worker's parent cgroup outlived its last job"


async def test_a_memory_kill_ends_the_cgroup_too(
    cgroups: JobCgroups, tmp_path: Path, marker: str, no_escapees: None
) -> None:
    grow = f"{PY} -c \"b = b'x' * (300 << 20); import time; time.sleep(30)\""
    job = escaping_job(marker, grow, memory_limit_mib=150)
    execution = await ProcessExecutor(kill_grace_s=0.5, poll_s=0.05).start(job, tmp_path)

    result = await execution.wait()

    assert result.killed_by == "memory", result.detail
    assert not running_with(marker)
    assert execution.cgroup is not None and not execution.cgroup.exists()


async def test_cpu_limited_job_joins_its_cgroup_through_the_preexec_path(
    cgroups: JobCgroups, tmp_path: Path
) -> None:
    # A CPU limit needs a preexec_fn (no setpriv): the join must not depend on which.
    job = parse_spec({"command": ["cat", "/proc/self/cgroup"], "timeout_s": 10})
    limited = job.model_copy(update={"cpu_time_limit_s": 5})
    for number, spec in enumerate((job, limited)):
        execution = await ProcessExecutor().start(spec, tmp_path / str(number))
        assert execution.cgroup is not None
        result = await execution.wait()
        line = next(x for x in result.stdout_tail.splitlines() if x.startswith("0::"))
        assert line.endswith(f"/{execution.cgroup.parent.name}/{execution.cgroup.name}")


def test_a_job_that_cannot_join_fails_before_its_program_runs(tmp_path: Path) -> None:
    ran = tmp_path / "ran"
    argv = join_argv(tmp_path / "no-such-cgroup", ["touch", str(ran)])
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 125 and "cannot join cgroup" in done.stderr
    assert not ran.exists()


@pytest.mark.parametrize("use_kill_file", [True, False], ids=["cgroup.kill", "freeze-and-kill"])
def test_ending_a_cgroup_kills_every_member_and_removes_it(
    cgroups: JobCgroups, use_kill_file: bool
) -> None:
    cgroup = cgroups.create()
    script = "( (setsid sleep 300 &) & ); sleep 300 & exec sleep 301"
    first = subprocess.Popen(join_argv(cgroup, ["sh", "-c", script]))
    try:
        _wait_for(lambda: len(members(cgroup)) >= 3)
        assert populated(cgroup)
        assert end_cgroup(cgroup, use_kill_file=use_kill_file)
        assert not cgroup.exists() and not populated(cgroup)
    finally:
        first.kill()
        first.wait()
        cgroups.remove(cgroup)
    assert not cgroups.parent.exists()


def test_a_dead_workers_cgroups_are_emptied_and_removed(cgroups: JobCgroups) -> None:
    assert cgroups.base is not None
    stale = cgroups.base / f"{PARENT_PREFIX}{_dead_pid()}"
    (stale / "job-1").mkdir(parents=True)
    left = subprocess.Popen(join_argv(stale / "job-1", ["sleep", "300"]))
    try:
        _wait_for(lambda: members(stale / "job-1") == [left.pid])
        again = JobCgroups.at(cgroups.base)

        assert again.available
        assert not stale.exists()
        assert left.wait(5) == -9
    finally:
        left.kill()
        left.wait()
        end_cgroup(stale / "job-1")
        with contextlib.suppress(OSError):
            stale.rmdir()


class TestWithoutCgroups:
    """The fallback: forced by pointing the executor at a directory that is no cgroup."""

    @pytest.fixture
    def fallback(self, tmp_path: Path) -> Iterator[ProcessExecutor]:
        cgroups = JobCgroups.at(tmp_path / "not-a-cgroup")
        assert not cgroups.available and "is not a cgroup v2 directory" in cgroups.reason
        yield ProcessExecutor(kill_grace_s=0.5, poll_s=0.05, cgroups=cgroups)
        # The executor made this process a subreaper; a test session should not stay one.
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)

    def test_it_is_off_by_setting_too(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BYTELEAP_JOB_CGROUPS", "off")
        found = JobCgroups.discover()
        assert not found.available and "BYTELEAP_JOB_CGROUPS" in found.reason

    @pytest.mark.parametrize("ending", ["exit", "cancel"])
    async def test_double_forks_are_still_killed(
        self,
        fallback: ProcessExecutor,
        tmp_path: Path,
        marker: str,
        no_escapees: None,
        ending: str,
    ) -> None:
        zombies_before = _zombie_children()
        then = "" if ending == "exit" else "sleep 300"
        execution = await fallback.start(escaping_job(marker, then), tmp_path / "work")
        assert execution.cgroup is None
        lines = execution.logs()
        assert (await anext(lines)).line == "ready"
        await lines.aclose()
        assert len(running_with(marker)) == 3

        result = await (execution.cancel() if ending == "cancel" else execution.wait())

        assert result.state in (ExecutionState.SUCCEEDED, ExecutionState.CANCELLED)
        assert not running_with(marker), "a double-forked process outlived its job"
        assert _zombie_children() <= zombies_before, "the adopted orphans were not reaped"


def _zombie_children() -> set[int]:
    return {p.pid for p in psutil.Process().children() if p.status() == psutil.STATUS_ZOMBIE}


def _dead_pid() -> int:
    gone = subprocess.Popen(["true"])
    gone.wait()
    return gone.pid


def _wait_for(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
