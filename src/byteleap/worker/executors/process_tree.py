"""Everything one execution started: what the process executor signals, samples and waits for.

Two shapes, one interface (``sample``, ``signal``, ``alive``, ``reap``):

- `CgroupTree`: the members of the job's cgroup (`process_cgroup`). Nothing the job starts is
  outside it, so this is exact.
- `ProcessTree`, the fallback where there are no job cgroups: the job's process group, every
  descendant ever sampled, and the orphans the worker adopted (it is their subreaper) that
  carry this execution's marker in their environment. What it cannot see: a process that
  left the group (setsid), was never sampled while a descendant, and replaced its
  environment before it was orphaned (``env -i``, or an exec with an environment of its own).

Zombies count as gone: they hold no resources but a pid, and where PID 1 does not reap
orphans (many containers) they never disappear.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from pathlib import Path

import psutil

from byteleap.worker.executors.process_cgroup import kill_cgroup, members, populated

#: The environment variable marking a job's processes where there are no job cgroups.
MARKER_ENV = "BYTELEAP_EXECUTION"


class CgroupTree:
    """The processes in job cgroup ``cgroup``, whose first process (``pid``) leads a session."""

    def __init__(self, pid: int, cgroup: Path) -> None:
        self.pgid = pid
        self.cgroup = cgroup
        self._known: dict[int, psutil.Process] = {}  # sample() runs in a thread: no sharing

    def sample(self) -> int:
        """The resident bytes of every process in the cgroup."""
        current: dict[int, psutil.Process] = {}
        for pid in members(self.cgroup):
            process = self._known.get(pid)
            with contextlib.suppress(psutil.Error):
                if process is None or not process.is_running():
                    process = psutil.Process(pid)
                current[pid] = process
        self._known = current
        return sum(_rss(p) for p in current.values())

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the group and to every process in the cgroup."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)  # the first process may not have joined yet
        if sig == signal.SIGKILL:
            kill_cgroup(self.cgroup)  # at once: a process forking meanwhile is killed too
            return
        for pid in members(self.cgroup):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def alive(self) -> bool:
        return populated(self.cgroup)

    def reap(self) -> None:
        """Nothing to collect: orphans in a cgroup go to PID 1 as ever."""


class ProcessTree:
    """The group led by ``pid`` (a session leader), the descendants sampled so far and the
    adopted orphans marked with ``marker``."""

    def __init__(self, pid: int, marker: str | None = None) -> None:
        self.pgid = pid
        self._marker = marker
        self._lock = threading.Lock()  # sample() runs in a thread, signal()/alive() on the loop
        self._seen: set[psutil.Process] = set()
        try:
            self._root: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self._root = None  # it already exited; the group may still hold its children

    def sample(self) -> int:
        """Record the current descendants; return the resident bytes of the live tree."""
        current = self._descendants() | self._adopted()
        with self._lock:
            self._seen |= current
            tracked = set(self._seen)
        if self._root is not None:
            tracked.add(self._root)
        return sum(_rss(p) for p in tracked)

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to the group and to every live descendant seen (even outside it)."""
        self.sample()
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, sig)
        with self._lock:
            tracked = set(self._seen)
        for process in tracked:
            with contextlib.suppress(psutil.Error):
                process.send_signal(sig)

    def alive(self) -> bool:
        """Whether any member of the group or any seen descendant still runs."""
        with self._lock:
            tracked = set(self._seen)
        return any(_running(p) for p in tracked) or bool(self._group_members())

    def reap(self) -> None:
        """Collect the exit status of this job's dead orphans that the worker adopted, which
        nobody else waits for (the first process is asyncio's to reap): those seen, and those
        still in the job's group or session (a subshell of a double fork, never sampled)."""
        with self._lock:
            seen = set(self._seen)
        me = os.getpid()
        candidates = set(seen)
        with contextlib.suppress(psutil.Error):
            candidates |= set(psutil.Process(me).children())
        for process in candidates:
            # An unreaped zombie keeps its pid: one that is still this process is ours.
            with contextlib.suppress(psutil.Error, OSError):
                if process.pid == self.pgid or process.ppid() != me:
                    continue
                if not process.is_running() or process.status() != psutil.STATUS_ZOMBIE:
                    continue
                if process in seen or self.pgid in (
                    os.getpgid(process.pid),
                    os.getsid(process.pid),
                ):
                    os.waitpid(process.pid, os.WNOHANG)

    def _descendants(self) -> set[psutil.Process]:
        if self._root is None:
            return set()
        try:
            return set(self._root.children(recursive=True))
        except psutil.Error:
            return set()

    def _adopted(self) -> set[psutil.Process]:
        """The worker's children (and theirs) that carry this execution's marker: orphans
        of this job, adopted because the worker is a subreaper."""
        if self._marker is None:
            return set()
        found: set[psutil.Process] = set()
        with contextlib.suppress(psutil.Error):
            for child in psutil.Process().children():
                with contextlib.suppress(psutil.Error):
                    if child.pid != self.pgid and child.environ().get(MARKER_ENV) == self._marker:
                        found |= {child, *child.children(recursive=True)}
        return found

    def _group_members(self) -> list[int]:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass  # someone in the group, under another uid: look at who
        found = []
        for pid in psutil.pids():
            try:
                if os.getpgid(pid) == self.pgid and _running(psutil.Process(pid)):
                    found.append(pid)
            except (OSError, psutil.Error):
                continue
        return found


def _running(process: psutil.Process) -> bool:
    try:
        return bool(process.is_running()) and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _rss(process: psutil.Process) -> int:
    try:
        if process.status() == psutil.STATUS_ZOMBIE:
            return 0
        return int(process.memory_info().rss)
    except psutil.Error:
        return 0
