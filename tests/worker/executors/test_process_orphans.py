"""A process job does not outlive its worker: a worker-like parent starts a job through the
process executor and is killed with SIGKILL; the job's whole process group (background and
orphaned children included) and, with job cgroups, every process of its cgroup (setsid and
double forks included) are gone within seconds, and so is the cgroup. Real processes
throughout."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from byteleap.worker.executors.process_cgroup import job_cgroups, remove_parent
from escapees import running_with

WORKER = Path(__file__).parents[2] / "data" / "executors" / "worker_like.py"
GONE_WITHIN_S = 5.0

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and process groups: Linux"
)


def _alive(pid: int) -> bool:
    """Running, and not a zombie (PID 1 here may not reap orphans)."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def _group(pgid: int) -> set[int]:
    members = set()
    for pid in psutil.pids():
        with contextlib.suppress(OSError):
            if os.getpgid(pid) == pgid and _alive(pid):
                members.add(pid)
    return members


def _wait_until_gone(pids: set[int]) -> float:
    """Seconds until none of ``pids`` runs; fails past GONE_WITHIN_S."""
    start = time.monotonic()
    while (left := {p for p in pids if _alive(p)}) and time.monotonic() - start < GONE_WITHIN_S:
        time.sleep(0.05)
    assert not left, f"still running {GONE_WITHIN_S} s after the worker died: {left}"
    return time.monotonic() - start


@contextlib.contextmanager
def _worker(workdir: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any]]]:
    """The worker-like parent, started, and what it printed once its job ran."""
    parent = subprocess.Popen(
        [sys.executable, str(WORKER), str(workdir), *flags],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    started: dict[str, Any] = {}
    try:
        assert parent.stdout is not None
        ready, _, _ = select.select([parent.stdout], [], [], 30)
        line = parent.stdout.readline() if ready else ""
        assert line, f"the worker did not start its job: {parent.poll()=}"
        started = json.loads(line)
        yield parent, started
    finally:
        parent.kill()
        for pid in (started.get("job"), started.get("released")):
            if pid:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
        if started.get("cgroup"):  # what a test without a guard leaves
            remove_parent(Path(started["cgroup"]).parent)
        _, errors = parent.communicate(timeout=10)
        assert "Traceback" not in errors, errors


@pytest.fixture
def cgroups_here() -> None:
    found = job_cgroups()
    if not found.available:
        pytest.skip(f"no writable cgroup v2 here: {found.reason}")


@pytest.mark.parametrize("flags", [(), ("--no-cgroups",)], ids=["cgroup", "fallback"])
def test_the_job_group_dies_with_its_worker_killed_by_sigkill(
    tmp_path: Path, flags: tuple[str, ...]
) -> None:
    with _worker(tmp_path, *flags) as (parent, started):
        assert (started["cgroup"] is None) == bool(flags)
        job = started["job"]
        members = _group(job)
        # sh, its two background sleeps and the orphaned one (reparented, same group)
        assert job in members and len(members) == 4, members
        orphan = members - {job} - {c.pid for c in psutil.Process(job).children()}
        assert len(orphan) == 1, "the orphaned sleep is no child of the job's shell"
        assert started["guard"] is not None and _alive(started["guard"])
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        _wait_until_gone(members)
        _wait_until_gone({started["guard"]})  # its work done, the guard exits too


def test_a_jobs_setsid_and_double_forks_die_with_its_worker(
    tmp_path: Path, cgroups_here: None
) -> None:
    marker = f"escapee-{os.getpid()}-{time.monotonic_ns()}"
    try:
        with _worker(tmp_path, "--escapees", marker) as (parent, started):
            cgroup = Path(started["cgroup"])
            escapees = running_with(marker) - {parent.pid}  # the marker is in its argv too
            assert len(escapees) == 3, escapees
            # The two setsid ones left the job's group: the guard's killpg misses them.
            assert len(escapees - _group(started["job"])) == 2
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait(5)
            _wait_until_gone(escapees | _group(started["job"]))
            _wait_until_gone({started["guard"]})  # it exits once the cgroup is removed
            assert not cgroup.exists() and not cgroup.parent.exists()
    finally:
        for pid in running_with(marker):
            with contextlib.suppress(psutil.Error):
                psutil.Process(pid).kill()


def test_a_released_group_is_left_alone(tmp_path: Path) -> None:
    with _worker(tmp_path, "--released") as (parent, started):
        members, released = _group(started["job"]), started["released"]
        assert _alive(released)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        _wait_until_gone(members)
        assert _alive(released), "a group the executor released was killed"


def test_without_its_guard_the_jobs_first_process_still_dies(tmp_path: Path) -> None:
    """PR_SET_PDEATHSIG alone: the kernel kills the job's first process (what it forked is
    what the guard is for)."""
    with _worker(tmp_path, "--guard-killed") as (parent, started):
        job = started["job"]
        assert not _alive(started["guard"])
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(5)
        _wait_until_gone({job})
