"""The process executor: runs the program as a child process of the worker, in its own session
and, where cgroup v2 is writable, in a cgroup of its own.

What it gives: a fresh work dir, a clean environment (only PATH, HOME=work dir, LANG and the
spec's env; the worker's own environment — keys, tokens — is not inherited), bounded output,
a timeout, cancel, a CPU-time rlimit and a resident-memory watchdog.

How it stops a program: the child leads a new session and joins a fresh job cgroup before the
program is executed (`process_cgroup`), so everything it ever starts — ``setsid`` and double
forks included — is in that cgroup. Stopping sends SIGTERM to every process there, waits
``kill_grace_s``, then kills the cgroup. When the main process exits on its own, whatever it
left running is stopped the same way. However it ends, its result comes only once its cgroup
is empty and removed (or after ``process_cgroup.END_TIMEOUT_S``, with an error logged and
the cgroup left to the guard): a job does not outlive itself. Nor its worker: when the worker
dies, even by SIGKILL, the kernel kills the job's first process and the worker's guard kills
its group and its cgroup (`process_guard`).

Without job cgroups (no writable cgroup v2, or ``BYTELEAP_JOB_CGROUPS=off``; a warning is
logged once and ``ProcessExecutor.cgroups.available`` is False) the executor falls back to the
process group: the worker becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``), so a job's
orphans are re-parented to it instead of PID 1, and each job's environment carries a random
``BYTELEAP_EXECUTION`` marker by which the watchdog claims them (`process_tree.ProcessTree`).
What that cannot catch: an orphan that left the group (setsid), was never sampled (every
``poll_s``) while a descendant and dropped the marker from its environment before it was
orphaned; and, when the worker dies, any process outside the job's group. It also makes the
worker the parent of other programs' orphans (a daemon a container engine double-forks),
which stay zombies until the worker exits.

Limits: ``cpu_time_limit_s`` is RLIMIT_CPU set in a ``preexec_fn`` (per process: SIGXCPU at the
limit, SIGKILL a few seconds later). ``memory_limit_mib`` is *not* an rlimit: RLIMIT_AS counts
address space, which CUDA, JIT runtimes and glibc's per-thread malloc arenas reserve far beyond
what they use, and every rlimit is per process, so a forking job would get N times the limit.
Instead the watchdog sums the resident memory of the whole tree (the cgroup's members) and
kills it when it is over (``killed_by="memory"``); an allocation burst shorter than ``poll_s``
can overshoot briefly. The job cgroup enables no controller: it only holds and kills.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import resource
import secrets
import signal
import subprocess
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from byteleap.protocol.execution import (
    FEATURE_NETWORK_ISOLATION,
    ArtifactInfo,
    ExecutionResult,
    ExecutionSpec,
)
from byteleap.worker.executors.base import check_spec
from byteleap.worker.executors.errors import StartFailedError
from byteleap.worker.executors.output import LineSplitter, OutputLog
from byteleap.worker.executors.process_cgroup import JobCgroups, job_cgroups, join_argv
from byteleap.worker.executors.process_guard import (
    become_subreaper,
    check_program,
    pdeathsig_argv,
    preexec,
    process_guard,
)
from byteleap.worker.executors.process_tree import MARKER_ENV, CgroupTree, ProcessTree
from byteleap.worker.executors.supervised import SupervisedExecution
from byteleap.worker.executors.workdir import collect_artifacts, prepare_workdir

logger = logging.getLogger(__name__)

#: How long output readers may take to reach EOF once every known process is gone; a process
#: that escaped the group (without job cgroups) and kept the pipe open is not waited for
#: beyond this.
_DRAIN_S = 2.0
_STOP_POLL_S = 0.05
#: Without job cgroups, how long to wait for SIGKILLed processes to be gone.
_END_S = 2.0
#: Seconds between SIGXCPU (soft RLIMIT_CPU) and the kernel's SIGKILL (hard limit).
_CPU_HARD_MARGIN_S = 5


class ProcessExecutor:
    """Runs a spec as a local child process (see the module docstring for what it isolates)."""

    name: ClassVar[str] = "process"
    unsupported: ClassVar[dict[str, str]] = {
        FEATURE_NETWORK_ISOLATION: "the child shares the worker's network namespace",
        "gpu_exclusive": "CUDA_VISIBLE_DEVICES only hides GPUs; without a device cgroup any "
        "process of the worker's user can still open them",
        "cpu_cores": "no cpu controller: RLIMIT_CPU caps CPU-seconds, not the cores used",
        "filesystem_isolation": "the child runs as the worker's user and reads what it can",
    }

    def __init__(
        self, *, kill_grace_s: float = 5.0, poll_s: float = 0.2, cgroups: JobCgroups | None = None
    ) -> None:
        self.kill_grace_s = kill_grace_s
        self.poll_s = poll_s
        self._cgroups = cgroups

    @property
    def cgroups(self) -> JobCgroups:
        """Where this executor's jobs get their cgroups (the process's own by default), or
        why they get none (``available`` False: the fallback in the module docstring)."""
        if self._cgroups is None:
            self._cgroups = job_cgroups()
        return self._cgroups

    async def start(
        self, spec: ExecutionSpec, workdir: Path, *, fetched: Mapping[str, Path] | None = None
    ) -> ProcessExecution:
        """``fetched``: the cached file of each URL input (see ``prepare_workdir``)."""
        spec = check_spec(spec, self.unsupported)
        # Resolved: HOME and cwd must not depend on the worker's own cwd.
        workdir = await asyncio.to_thread(prepare_workdir, spec, workdir, fetched)
        cgroups = self._cgroups = self._cgroups or await asyncio.to_thread(job_cgroups)
        cgroup = await self._cgroup(cgroups, spec)
        env = child_env(spec, workdir)
        marker = None
        if cgroup is None:
            marker = env[MARKER_ENV] = secrets.token_hex(16)
            become_subreaper()
        try:
            transport, child = await self._spawn(spec, workdir, env, cgroup)
        except BaseException:
            if cgroup is not None:
                await asyncio.to_thread(cgroups.remove, cgroup)
                process_guard().release_cgroup(cgroup)
            raise
        pid = transport.get_pid()
        process_guard().watch(pid)  # its session leader: pgid == pid
        tree = CgroupTree(pid, cgroup) if cgroup is not None else ProcessTree(pid, marker)
        execution = ProcessExecution(transport, child, spec, workdir, self, tree)
        logger.info(
            "execution started",
            extra={"pid": execution.pid, "program": spec.command[0], "cgroup": str(cgroup)},
        )
        return execution

    @staticmethod
    async def _cgroup(cgroups: JobCgroups, spec: ExecutionSpec) -> Path | None:
        if not cgroups.available:
            return None
        try:
            return await asyncio.to_thread(cgroups.create)
        except OSError as exc:  # a job that could escape is not started
            raise StartFailedError(
                f"cannot create the job's cgroup: {exc}", program=spec.command[0]
            ) from exc

    async def _spawn(
        self, spec: ExecutionSpec, workdir: Path, env: dict[str, str], cgroup: Path | None
    ) -> tuple[asyncio.SubprocessTransport, ChildProtocol]:
        log = OutputLog(spec.max_output_bytes)
        loop = asyncio.get_running_loop()
        limits = _rlimits(spec)
        try:
            # Without limits to set, setpriv gives the parent-death signal and the child
            # starts without a preexec_fn (no fork of the whole worker); else the preexec.
            argv = pdeathsig_argv(spec.command, env, workdir) if limits is None else None
            preexec_fn = None if argv else preexec(then=limits)
            argv = argv or spec.command
            if cgroup is not None:
                check_program(spec.command, env, workdir)
                argv = join_argv(cgroup, argv)
                # Told before the spawn: the worker may die before the child joins.
                process_guard().watch_cgroup(cgroup)
            return await loop.subprocess_exec(
                lambda: ChildProtocol(log, loop),
                *argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=workdir,
                env=env,
                start_new_session=True,
                preexec_fn=preexec_fn,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise StartFailedError(
                f"cannot start {spec.command[0]!r}: {exc}", program=spec.command[0]
            ) from exc


def child_env(spec: ExecutionSpec, workdir: Path) -> dict[str, str]:
    """The whole environment of the child: a few basics, the spec's env, the visible GPUs."""
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(workdir),
        "LANG": "C.UTF-8",
    }
    env.update(spec.env)
    # Empty hides every GPU: a CPU job on a GPU worker must not take a GPU it was not given.
    env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in spec.gpus)
    # The indices are NVML's (nvidia-smi's); CUDA numbers the same cards fastest first
    # unless told to follow the PCI bus as NVML does.
    env["CUDA_DEVICE_ORDER"] = "PCI_BUS_ID"
    return env


def _rlimits(spec: ExecutionSpec) -> Callable[[], None] | None:
    # preexec_fn runs between fork and exec, where another thread may hold a lock: it makes
    # system calls only (prctl, setrlimit), through functions looked up before the fork.
    if spec.cpu_time_limit_s is None:
        return None
    soft = spec.cpu_time_limit_s
    _, hard_now = resource.getrlimit(resource.RLIMIT_CPU)
    hard = soft + _CPU_HARD_MARGIN_S
    if hard_now != resource.RLIM_INFINITY:
        hard = min(hard, hard_now)
        soft = min(soft, hard)

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))

    return apply


class ChildProtocol(asyncio.SubprocessProtocol):
    """Feeds the child's pipes into the output log and tells when the child exits.

    The exit is watched here rather than through ``asyncio.subprocess.Process.wait``, which on
    Python 3.11 returns only once every pipe is closed — never, while a leftover grandchild
    holds stdout.
    """

    def __init__(self, log: OutputLog, loop: asyncio.AbstractEventLoop) -> None:
        self._splitters = {1: LineSplitter("stdout", log), 2: LineSplitter("stderr", log)}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self.log = log

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        self._splitters[fd].feed(data if isinstance(data, bytes) else data.encode())

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd in self._splitters:
            self._splitters[fd].flush()

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    def flush(self) -> None:
        for splitter in self._splitters.values():
            splitter.flush()


class ProcessExecution(SupervisedExecution):
    """One running child process and its supervision task."""

    def __init__(
        self,
        transport: asyncio.SubprocessTransport,
        child: ChildProtocol,
        spec: ExecutionSpec,
        workdir: Path,
        executor: ProcessExecutor,
        tree: CgroupTree | ProcessTree,
    ) -> None:
        super().__init__(child.log)
        self._transport = transport
        self._child = child
        self._spec = spec
        self._workdir = workdir
        self._grace = executor.kill_grace_s
        self._poll = executor.poll_s
        self._started_at = datetime.now(UTC)
        self._cgroups = executor.cgroups
        self._tree = tree
        self._task = asyncio.create_task(self._supervise(), name=f"execution-{self.pid}")

    @property
    def pid(self) -> int:
        return int(self._transport.get_pid())

    @property
    def cgroup(self) -> Path | None:
        """The job's cgroup (removed once the job ended); None without job cgroups."""
        return self._tree.cgroup if isinstance(self._tree, CgroupTree) else None

    async def _supervise(self) -> ExecutionResult:
        watchdog = asyncio.create_task(self._watch())
        try:
            if not await self._exited_in_time():
                # A tree over its memory limit may take the host down during a grace period.
                await self._stop_tree(0.0 if self._cause == "memory" else self._grace)
            elif self._tree.alive():
                await self._stop_tree(self._grace)  # the program left processes behind
        finally:
            watchdog.cancel()
            if not self._child.exited.done():  # supervision itself failed: leave nothing
                self._tree.signal(signal.SIGKILL)
            await asyncio.gather(watchdog, return_exceptions=True)
            await self._end_tree()
            process_guard().release(self._tree.pgid)
            await self._close_pipes()
        artifacts = await asyncio.to_thread(
            collect_artifacts, self._workdir, self._spec.artifacts_dir
        )
        return self._result(artifacts)

    async def _end_tree(self) -> None:
        """Kill what is left and wait until nothing of the job runs: its cgroup empty and
        removed, or (without one) every process seen gone and the adopted ones reaped."""
        if isinstance(self._tree, CgroupTree):
            cgroup = self._tree.cgroup
            if await asyncio.to_thread(self._cgroups.remove, cgroup):
                process_guard().release_cgroup(cgroup)
            # Else it stays told: the guard, or the next worker's start, removes it.
            return
        for _ in range(math.ceil(_END_S / _STOP_POLL_S)):
            if not self._tree.alive():
                break
            await asyncio.sleep(_STOP_POLL_S)
        await asyncio.to_thread(self._tree.reap)

    async def _close_pipes(self) -> None:
        # A process that escaped the group may hold a pipe open: wait for EOF a little only.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._child.closed), _DRAIN_S)
        self._transport.close()
        self._child.flush()
        self._log.close()

    async def _exited_in_time(self) -> bool:
        stopped = asyncio.ensure_future(self._stop.wait())
        waiters: set[asyncio.Future[Any]] = {self._child.exited, stopped}
        try:
            done, _ = await asyncio.wait(
                waiters,
                timeout=self._spec.timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            stopped.cancel()
        if self._child.exited in done:
            return True
        self._request_stop("timeout", f"timed out after {self._spec.timeout_s:g} s")
        return False

    async def _stop_tree(self, grace: float) -> None:
        """SIGTERM the tree, SIGKILL whatever is left after ``grace`` seconds."""
        if grace > 0:
            await self._terminate(grace)
        self._tree.signal(signal.SIGKILL)
        await self._child.exited

    async def _terminate(self, grace: float) -> None:
        self._tree.signal(signal.SIGTERM)
        # Nothing signals a group's end; poll it until it is empty or the grace is over.
        for _ in range(math.ceil(grace / _STOP_POLL_S)):
            if not self._tree.alive():
                break
            await asyncio.sleep(_STOP_POLL_S)

    async def _watch(self) -> None:
        limit = self._spec.memory_limit_mib
        while True:
            rss = await asyncio.to_thread(self._tree.sample)
            if limit is not None and rss > limit << 20:
                self._request_stop(
                    "memory",
                    f"resident memory {rss >> 20} MiB exceeded the limit of {limit} MiB; killed",
                )
                return
            await asyncio.sleep(self._poll)

    def _result(self, artifacts: list[ArtifactInfo]) -> ExecutionResult:
        code = self._transport.get_returncode()
        assert code is not None, "the result is built only after the child exited"
        return self._log.result(
            code=code,
            started_at=self._started_at,
            artifacts=artifacts,
            killed_by=self._cause,
            detail=self._detail or _explain(code, self._spec),
        )


def _explain(code: int, spec: ExecutionSpec) -> str:
    if code >= 0:
        return "" if code == 0 else f"exited with status {code}"
    name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
    if -code == signal.SIGXCPU and spec.cpu_time_limit_s is not None:
        return f"CPU-time limit of {spec.cpu_time_limit_s} s reached ({name})"
    return f"killed by {name}"
