"""Everything one execution started: its process group plus every descendant ever seen.

Zombies count as gone: they hold no resources but a pid, and where PID 1 does not reap
orphans (many containers) they never disappear.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading

import psutil


class ProcessTree:
    """The group led by ``pid`` (a session leader) and the descendants sampled so far."""

    def __init__(self, pid: int) -> None:
        self.pgid = pid
        self._lock = threading.Lock()  # sample() runs in a thread, signal()/alive() on the loop
        self._seen: set[psutil.Process] = set()
        try:
            self._root: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:
            self._root = None  # it already exited; the group may still hold its children

    def sample(self) -> int:
        """Record the current descendants; return the resident bytes of the live tree."""
        current = self._descendants()
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

    def _descendants(self) -> set[psutil.Process]:
        if self._root is None:
            return set()
        try:
            return set(self._root.children(recursive=True))
        except psutil.Error:
            return set()

    def _group_members(self) -> list[int]:
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return []
        except PermissionError:
            pass  # someone in the group, under another uid: look at who
        members = []
        for pid in psutil.pids():
            try:
                if os.getpgid(pid) == self.pgid and _running(psutil.Process(pid)):
                    members.append(pid)
            except (OSError, psutil.Error):
                continue
        return members


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
