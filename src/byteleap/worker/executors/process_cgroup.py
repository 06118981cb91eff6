"""Job cgroups: every process of a process job lives in a cgroup v2 of its own and dies with it.

A process group or session is no boundary: a job's ``setsid`` or double-forked process leaves
it, and would run on, unbilled, after its job ended. A cgroup is one: children are born into
their parent's cgroup, and only a process allowed to write the cgroup tree can leave it. The
layout, on the cgroup2 mount found in ``/proc/self/mounts``, under the worker's own cgroup
(``/proc/self/cgroup``; the mount's root where that is not on this mount)::

    <worker's cgroup>/byteleap-worker-<pid>/job-<n>/

A job's first process joins ``job-<n>`` before the program is executed (`join_argv`), so
nothing it starts is ever outside. Ending a job (`end_cgroup`) writes ``cgroup.kill`` (Linux
5.14+; before that: freeze, then SIGKILL every member until none is left), waits until
``cgroup.events`` says ``populated 0`` (zombies do not count) and removes the directory. The
per-worker parent goes with its last job; parents left by dead workers (or by an earlier
process with this pid) are emptied and removed when a worker first looks (`JobCgroups.at`).

No controller is enabled: the cgroup is for membership and killing only; the process executor
enforces its limits itself. Where cgroup v2 is missing or not writable (checked by moving a
probe process into one), or ``BYTELEAP_JOB_CGROUPS=off``, `JobCgroups.available` is False and
`reason` says why; the executor then falls back as ``process.py`` describes.

Left uncovered: a job running as a user that may write the cgroup tree (root, here) can move
itself out. Run the worker as an unprivileged user owning a delegated subtree to close that.

Standard library only: the process guard, run as a script, loads this file to end the cgroups
of a worker that died.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

logger = logging.getLogger(__name__)

PARENT_PREFIX = "byteleap-worker-"
DISABLE_ENV = "BYTELEAP_JOB_CGROUPS"
#: How long ending a cgroup may wait for its processes to be gone.
END_TIMEOUT_S = 5.0
_POLL_S = 0.005
# The job's first process moves itself ($$ stays its pid through exec) into the cgroup named
# by $0, then becomes the program; a failed move fails the job before the program runs.
_JOIN = 'echo $$ >"$0" || { echo "byteleap: cannot join cgroup $0" >&2; exit 125; }; exec "$@"'


def cgroup2_mount(mounts: str) -> Path | None:
    """The first cgroup2 mount point in a ``/proc/self/mounts`` text."""
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == "cgroup2":
            # /proc/mounts writes space, tab, newline and backslash as octal escapes.
            return Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[1]))
    return None


def own_cgroup(proc_cgroup: str) -> str | None:
    """This process's cgroup v2 path from a ``/proc/self/cgroup`` text (``0::/path``)."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def join_argv(cgroup: Path, argv: list[str]) -> list[str]:
    """``argv`` behind a shell that first moves itself into ``cgroup``."""
    return ["/bin/sh", "-c", _JOIN, str(cgroup / "cgroup.procs"), *argv]


def members(cgroup: Path) -> list[int]:
    """The pids in ``cgroup`` and in any cgroup below it (a job may make some)."""
    pids: list[int] = []
    for directory, _, _ in os.walk(cgroup):
        with contextlib.suppress(OSError):
            pids += [int(p) for p in Path(directory, "cgroup.procs").read_text().split()]
    return pids


def populated(cgroup: Path) -> bool:
    """Whether any process runs in ``cgroup`` or below; False when it is gone."""
    try:
        events = Path(cgroup, "cgroup.events").read_text().split()
    except FileNotFoundError:
        return False
    return events[events.index("populated") + 1] != "0"


def kill_cgroup(cgroup: Path, *, use_kill_file: bool = True) -> None:
    """SIGKILL every process in ``cgroup`` and below, at once where the kernel can."""
    if use_kill_file:
        with contextlib.suppress(OSError):
            Path(cgroup, "cgroup.kill").write_text("1")
            return
    # Frozen, nothing forks between reading the members and killing them; SIGKILL still
    # reaches a frozen process. Without a freezer (before 5.2) the caller's loop repeats this.
    with contextlib.suppress(OSError):
        Path(cgroup, "cgroup.freeze").write_text("1")
    for pid in members(cgroup):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def end_cgroup(
    cgroup: Path, timeout_s: float = END_TIMEOUT_S, *, use_kill_file: bool = True
) -> bool:
    """Kill everything in ``cgroup``, wait until it is empty, remove it (and any cgroup a job
    made below it). False when processes remain after ``timeout_s`` or it cannot be removed."""
    deadline = time.monotonic() + timeout_s
    while True:
        kill_cgroup(cgroup, use_kill_file=use_kill_file)
        if not populated(cgroup):
            break
        if time.monotonic() > deadline:
            logger.error("job cgroup still populated", extra={"cgroup": str(cgroup)})
            return False
        time.sleep(_POLL_S)
    try:
        for directory, _, _ in sorted(os.walk(cgroup), key=lambda d: -len(d[0])):
            os.rmdir(directory)  # the deepest first
    except FileNotFoundError:
        pass
    except OSError as exc:
        logger.error("cannot remove a job cgroup", extra={"cgroup": str(cgroup), "why": str(exc)})
        return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True


def remove_parent(parent: Path) -> None:
    """End every job cgroup in ``parent``, then remove it."""
    with contextlib.suppress(FileNotFoundError):
        for child in parent.iterdir():
            if child.is_dir():
                end_cgroup(child)
    with contextlib.suppress(OSError):
        parent.rmdir()


# The job cgroups this process made and has not removed, for every JobCgroups of it: two may
# share a base, and one must not take the other's parent for a dead worker's.
_live: set[Path] = set()
_live_lock = threading.Lock()
_names = itertools.count(1)


class JobCgroups:
    """This worker's parent cgroup and the job cgroups in it, or why there are none."""

    def __init__(self, base: Path | None, reason: str = "") -> None:
        self.base = base
        self.reason = reason

    @property
    def available(self) -> bool:
        return self.base is not None

    @property
    def parent(self) -> Path:
        assert self.base is not None, "no job cgroups here"
        return self.base / f"{PARENT_PREFIX}{os.getpid()}"

    @classmethod
    def discover(cls) -> JobCgroups:
        """Under this process's own cgroup on the cgroup2 mount, if that works here."""
        if os.environ.get(DISABLE_ENV, "").lower() in ("off", "0", "no", "false"):
            return cls(None, f"turned off by {DISABLE_ENV}")
        try:
            mount = cgroup2_mount(Path("/proc/self/mounts").read_text())
            own = own_cgroup(Path("/proc/self/cgroup").read_text())
        except OSError as exc:
            return cls(None, f"cannot read /proc: {exc}")
        if mount is None:
            return cls(None, "no cgroup2 file system is mounted")
        base = mount / (own or "/").lstrip("/")
        if ".." in Path(own or "/").parts or not (base / "cgroup.procs").is_file():
            base = mount  # our cgroup lies outside this mount (another cgroup namespace)
        return cls.at(base)

    @classmethod
    def at(cls, base: Path) -> JobCgroups:
        """Job cgroups under ``base`` if a process can be moved into one there; stale parents
        of dead workers under it are removed first."""
        if not (base / "cgroup.procs").is_file():
            return cls(None, f"{base} is not a cgroup v2 directory")
        cgroups = cls(base)
        try:
            cgroups._remove_stale()
            probe = cgroups.create()
            try:
                joined = subprocess.run(
                    join_argv(probe, ["true"]), capture_output=True, check=False
                )
            finally:
                cgroups.remove(probe)
        except OSError as exc:
            return cls(None, f"cannot create a cgroup under {base}: {exc}")
        if joined.returncode != 0:
            why = joined.stderr.decode(errors="replace").strip()
            return cls(None, f"cannot move a process into a cgroup under {base}: {why}")
        return cgroups

    def _remove_stale(self) -> None:
        assert self.base is not None
        for parent in self.base.glob(f"{PARENT_PREFIX}*"):
            pid = parent.name.removeprefix(PARENT_PREFIX)
            if not pid.isdigit():
                continue
            with _live_lock:
                ours = any(c.parent == parent for c in _live)
            if not ours and (int(pid) == os.getpid() or not _pid_alive(int(pid))):
                logger.warning(
                    "removing a dead worker's job cgroups", extra={"cgroup": str(parent)}
                )
                remove_parent(parent)

    def create(self) -> Path:
        """A new, empty job cgroup."""
        with _live_lock:
            self.parent.mkdir(exist_ok=True)
            cgroup = self.parent / f"job-{next(_names)}"
            cgroup.mkdir()
            _live.add(cgroup)
            return cgroup

    def remove(self, cgroup: Path, timeout_s: float = END_TIMEOUT_S) -> bool:
        """`end_cgroup`, and the parent with the last job; False if ``cgroup`` is left."""
        if not end_cgroup(cgroup, timeout_s):
            return False
        with _live_lock:
            _live.discard(cgroup)
            if not any(c.parent == cgroup.parent for c in _live):
                try:
                    cgroup.parent.rmdir()
                except OSError as exc:  # the guard, or the next worker's start, retries
                    if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EBUSY):
                        logger.error("cannot remove the worker's cgroup", extra={"why": str(exc)})
        return True


_cgroups: dict[int, JobCgroups] = {}
_cgroups_lock = threading.Lock()


def job_cgroups() -> JobCgroups:
    """This process's job cgroups, found on first use (a warning says when there are none)."""
    with _cgroups_lock:
        found = _cgroups.get(os.getpid())
        if found is None:
            found = _cgroups[os.getpid()] = JobCgroups.discover()
            if found.available:
                logger.info("process jobs run in cgroups", extra={"cgroup": str(found.parent)})
            else:
                logger.warning(
                    "no cgroup v2 for process jobs: a setsid'd orphan may outlive its job",
                    extra={"why": found.reason},
                )
        return found
