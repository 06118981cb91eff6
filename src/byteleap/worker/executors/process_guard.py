"""Process jobs die with their worker, even when the worker is killed with SIGKILL.

A job runs in a session of its own (so the executor can signal its whole group) and, where
cgroup v2 is writable, in a cgroup of its own (`process_cgroup`), which also means nothing ends
it when the worker dies: no signal reaches it, and a service replica would keep serving (and
holding its GPU) for nobody. Two mechanisms close that, because neither is enough alone:

- ``PR_SET_PDEATHSIG`` (`preexec`): the kernel SIGKILLs the job's first process when the
  thread that forked it ends. asyncio forks on its loop's thread, and a loop that ended no
  longer supervises anything, so that is the right moment too. It reaches that one process
  only: what the job forked is reparented and lives on.
- The guard (`ProcessGuard`): a small process in its own session (a signal to the worker's
  group does not reach it) that reads a pipe only the worker holds. The executor tells it
  each job's process group and cgroup when the job starts and when they are gone; when the
  pipe reaches end of file — the worker exited, however it died — the guard SIGKILLs every
  group still told and kills, empties and removes every cgroup still told (with its
  ``byteleap-worker-<pid>`` parent). No grace: there is nobody left to report a graceful end
  to.

Left uncovered where there are no job cgroups: a process that left its job's group (setsid)
is not in any group the guard knows; the executor's watchdog finds such processes only while
the worker lives. One guard serves a whole worker process (per pid: a forked child gets its
own).

Run as a script (``python -I -S process_guard.py``) this file is the guard itself; that part
imports only the standard library (and ``process_cgroup.py`` beside it, by path, which does
too), so it starts fast and sees none of the worker's modules.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


# Looked up once, here: the child between fork and exec must not load libraries.
_prctl = _load_prctl()


def preexec(then: Callable[[], None] | None = None) -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to SIGKILL the child when its forking thread ends,
    then running ``then``; just ``then`` where there is no prctl (not Linux)."""
    if _prctl is None:
        return then
    prctl, parent = _prctl, os.getpid()

    def apply() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the worker died before the request took effect
            os.kill(os.getpid(), signal.SIGKILL)
        if then is not None:
            then()

    return apply


def become_subreaper() -> bool:
    """Make this process adopt its descendants' orphans (instead of PID 1); False where
    the kernel cannot."""
    return _prctl is not None and _prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


# util-linux's setpriv sets the same parent-death signal and then execs the program, so the
# child needs no preexec_fn: Python can then start it with vfork/posix_spawn instead of a
# fork of the whole worker (about 25 ms for a 250 MB process, and unsafe with threads).
_SETPRIV = shutil.which("setpriv") if _prctl is not None else None


def pdeathsig_argv(argv: list[str], env: dict[str, str], cwd: Path) -> list[str] | None:
    """``argv`` behind setpriv's parent-death signal, or None where there is no setpriv."""
    if _SETPRIV is None:
        return None
    check_program(argv, env, cwd)
    return [_SETPRIV, "--pdeathsig", "KILL", "--", *argv]


def check_program(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    """Resolve the program as execvp would, on the child's PATH and cwd, so that a missing
    one fails at start rather than as the exit code 127 of a wrapper that execs it."""
    program = argv[0]
    if "/" in program:
        resolved = str(cwd / program) if not os.path.isabs(program) else program
        if not (os.path.isfile(resolved) and os.access(resolved, os.X_OK)):
            raise FileNotFoundError(2, "No such executable file", program)
    else:
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            raise FileNotFoundError(2, "No such file or directory", program)


class ProcessGuard:
    """The worker's side of the guard: registers process groups and job cgroups; restarts a
    guard that died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._told: set[str] = set()  # pgids, and cgroups by absolute path
        self._pid: int | None = None
        self._pipe: int | None = None

    @property
    def pid(self) -> int | None:
        """The guard process, once started."""
        return self._pid

    def watch(self, pgid: int) -> None:
        """Kill group ``pgid`` if this process ends before `release`."""
        self._tell(f"{pgid}")

    def release(self, pgid: int) -> None:
        """Group ``pgid`` is gone (or stopped by the executor): forget it."""
        self._forget(f"{pgid}")

    def watch_cgroup(self, cgroup: Path) -> None:
        """Kill and remove job cgroup ``cgroup`` if this process ends before `release_cgroup`."""
        if not cgroup.is_absolute() or "\n" in str(cgroup):
            raise ValueError(f"not a cgroup path the guard can be told: {cgroup!r}")
        self._tell(str(cgroup))

    def release_cgroup(self, cgroup: Path) -> None:
        """Job cgroup ``cgroup`` is removed: forget it."""
        self._forget(str(cgroup))

    def _tell(self, key: str) -> None:
        with self._lock:
            self._told.add(key)
            self._send(f"+{key}\n")

    def _forget(self, key: str) -> None:
        with self._lock:
            if key in self._told:
                self._told.discard(key)
                self._send(f"-{key}\n")

    def _send(self, line: str) -> None:
        if self._pipe is not None:
            try:
                os.write(self._pipe, line.encode())  # under PIPE_BUF: written whole
                return
            except OSError:  # the guard died: start another and tell it everything
                self._stop()
        self._start()
        assert self._pipe is not None
        os.write(self._pipe, "".join(f"+{key}\n" for key in sorted(self._told)).encode())

    def _start(self) -> None:
        read_end, write_end = os.pipe()  # not inheritable: only the guard's stdin holds it
        try:
            self._pid = os.posix_spawn(
                sys.executable,
                [sys.executable, "-I", "-S", os.path.abspath(__file__)],
                {"PATH": os.environ.get("PATH", os.defpath)},
                file_actions=[(os.POSIX_SPAWN_DUP2, read_end, 0)],
                setsid=True,
            )
        except BaseException:
            os.close(write_end)
            raise
        finally:
            os.close(read_end)
        self._pipe = write_end

    def _stop(self) -> None:
        if self._pipe is not None:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = None
        if self._pid is not None:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, os.WNOHANG)  # reap it if it is already gone
            self._pid = None


_guards: dict[int, ProcessGuard] = {}
_guards_lock = threading.Lock()


def process_guard() -> ProcessGuard:
    """This process's guard (started on first use)."""
    with _guards_lock:
        return _guards.setdefault(os.getpid(), ProcessGuard())


def _guard_main() -> None:
    """The guard process: read ``+key`` / ``-key`` lines (a pgid, or a cgroup's path) until
    EOF, then kill the groups and end the cgroups."""
    told: set[bytes] = set()
    pending = b""
    while chunk := os.read(0, 4096):
        *lines, pending = (pending + chunk).split(b"\n")
        for line in lines:
            if line[:1] in (b"+", b"-"):
                (told.add if line[:1] == b"+" else told.discard)(line[1:])
    for key in told:
        with contextlib.suppress(ValueError, OSError):
            if int(key) > 1:  # killpg(0 or 1) would not mean a job
                os.killpg(int(key), signal.SIGKILL)
    cgroups = [Path(os.fsdecode(key)) for key in told if key.startswith(b"/")]
    if cgroups:
        _end_cgroups(cgroups)


def _end_cgroups(cgroups: list[Path]) -> None:
    # The cgroup code, loaded by path: this script sees no package (python -I -S).
    loader = importlib.util.spec_from_file_location(
        "process_cgroup", Path(__file__).with_name("process_cgroup.py")
    )
    assert loader is not None and loader.loader is not None
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    for cgroup in cgroups:  # only what the executor makes: <base>/byteleap-worker-<pid>/job-<n>
        if cgroup.parent.name.startswith(module.PARENT_PREFIX):
            module.kill_cgroup(cgroup)
    for cgroup in cgroups:
        if cgroup.parent.name.startswith(module.PARENT_PREFIX):
            module.end_cgroup(cgroup)
            with contextlib.suppress(OSError):
                cgroup.parent.rmdir()  # once its last job cgroup is gone


if __name__ == "__main__":
    _guard_main()
