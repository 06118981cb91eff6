"""The container executor: runs the program in a container through the podman CLI (or docker's
where only docker exists), with the same port and semantics as the process executor.

What it gives beyond the process executor: the job's own root filesystem (the image), its own
network namespace with no interface but ``lo`` unless a network is asked for, cgroup limits
(memory without swap, CPU cores, pids), no capabilities, and GPUs only when listed (CDI devices
with podman, ``--gpus`` with docker). The work dir is bind-mounted at ``/work``, so inputs and
artifacts are plain files on the worker, as with processes (see ``container_create``).

Lifecycle: ``start`` creates the container (``create``: the image must exist or be pullable;
any refusal is a ``StartFailedError``), starts it attached — its stdout and stderr reach this
process through the engine CLI's pipes, bounded as for processes — and returns once it runs.
The timeout counts from then, not from the image pull. Stopping (timeout, cancel) is the
engine's ``stop``: SIGTERM to PID 1, SIGKILL after ``kill_grace_s``; an ``--init`` PID 1 passes
the signal on. The container is removed however the execution ends, so nothing of a job
outlives it. Containers are named ``byteleap-<execution id>`` and labelled
``byteleap.executor=container`` and ``byteleap.execution=<id>``.

Exit codes are the engine's: a program killed by signal N exits ``128 + N`` (137 for SIGKILL),
never negative. A memory kill is the kernel's OOM killer inside the container's cgroup; the
engine's ``OOMKilled`` flag is unreliable on some hosts, so exit code 137 with a memory limit
set counts as a memory kill too (``killed_by="memory"``, state failed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from byteleap.protocol.execution import ArtifactInfo, ExecutionResult, ExecutionSpec
from byteleap.worker.executors.base import check_spec
from byteleap.worker.executors.container_create import ContainerOptions, create_argv, job_image
from byteleap.worker.executors.container_engine import (
    FEATURE_GPUS,
    ContainerEngine,
    ContainerSettings,
    detect_engine,
    run_engine,
)
from byteleap.worker.executors.errors import StartFailedError, UnsupportedError
from byteleap.worker.executors.output import OutputLog
from byteleap.worker.executors.process import ChildProtocol
from byteleap.worker.executors.supervised import SupervisedExecution
from byteleap.worker.executors.workdir import collect_artifacts, prepare_workdir

logger = logging.getLogger(__name__)

_DRAIN_S = 2.0
_OOM_EXIT = 128 + signal.SIGKILL
#: Engine states of a container that has not run yet.
_NOT_STARTED = frozenset({"created", "configured", "initialized"})


class ContainerState(BaseModel):
    """The part of ``<engine> inspect``'s ``.State`` read here (same keys in podman and docker)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    status: str = Field(alias="Status")
    exit_code: int = Field(alias="ExitCode")
    oom_killed: bool = Field(default=False, alias="OOMKilled")


class ContainerExecutor:
    """Runs a spec in a container (see the module docstring). The engine is detected at the
    first ``start``; what it cannot do is in ``(await executor.engine()).unsupported``."""

    name: ClassVar[str] = "container"
    #: Gaps of every container engine; the detected engine's own are ``engine().unsupported``.
    unsupported: ClassVar[dict[str, str]] = {}

    def __init__(
        self,
        settings: ContainerSettings | None = None,
        *,
        kill_grace_s: float = 5.0,
        poll_s: float = 0.05,
    ) -> None:
        self.settings = settings if settings is not None else ContainerSettings.from_env()
        self.kill_grace_s = kill_grace_s
        self.poll_s = poll_s
        self._engine: ContainerEngine | None = None
        self._detecting = asyncio.Lock()

    async def engine(self) -> ContainerEngine:
        """The engine, detected once (an ``UnavailableExecutorError`` when there is none)."""
        async with self._detecting:
            if self._engine is None:
                self._engine = await detect_engine(self.settings)
            return self._engine

    async def start(
        self,
        spec: ExecutionSpec,
        workdir: Path,
        options: ContainerOptions | None = None,
        *,
        fetched: Mapping[str, Path] | None = None,
    ) -> ContainerExecution:
        """``fetched``: the cached file of each URL input (see ``prepare_workdir``)."""
        spec = check_spec(spec, self.unsupported)
        options = ContainerOptions.parse((options or ContainerOptions()).model_dump())
        job_image(options, self.settings)  # no image is a bad spec, found before any I/O
        engine = await self.engine()
        if spec.gpus and FEATURE_GPUS in engine.unsupported:
            raise UnsupportedError(
                f"this executor cannot provide gpus: {engine.unsupported[FEATURE_GPUS]}",
                feature=FEATURE_GPUS,
            )
        workdir = await asyncio.to_thread(prepare_workdir, spec, workdir, fetched)
        execution_id = uuid.uuid4().hex[:16]
        name = f"byteleap-{execution_id}"
        argv = create_argv(
            engine,
            self.settings,
            spec,
            options,
            workdir=workdir,
            name=name,
            execution_id=execution_id,
            user=(os.getuid(), os.getgid()),
        )
        try:
            reply = await run_engine(argv, self.settings.create_timeout_s)
        except BaseException:  # cancelled mid-create: the container may exist already
            await asyncio.shield(remove_container(engine, name, self.settings.command_timeout_s))
            raise
        if reply.returncode != 0:
            await remove_container(engine, name, self.settings.command_timeout_s)
            raise StartFailedError(
                f"cannot create the container: {reply.stderr.strip()}",
                image=job_image(options, self.settings),
                engine=engine.path,
            )
        execution = ContainerExecution(engine, name, execution_id, spec, workdir, self)
        await execution.run()
        logger.info("container started", extra={"container": name, "engine": engine.kind})
        return execution


async def remove_container(engine: ContainerEngine, name: str, timeout_s: float) -> bool:
    """Kill and remove ``name``; whether the engine confirmed (or it was already gone)."""
    force = ["rm", "--force", "--time=0"] if engine.kind == "podman" else ["rm", "--force"]
    reply = await run_engine(engine.argv(*force, name), timeout_s)
    if reply.returncode != 0 and "no such container" not in reply.stderr.lower():
        logger.warning("container not removed", extra={"container": name, "error": reply.stderr})
        return False
    return True


class ContainerExecution(SupervisedExecution):
    """One container, the engine CLI attached to it, and its supervision task."""

    def __init__(
        self,
        engine: ContainerEngine,
        name: str,
        execution_id: str,
        spec: ExecutionSpec,
        workdir: Path,
        executor: ContainerExecutor,
    ) -> None:
        super().__init__(OutputLog(spec.max_output_bytes))
        self.engine = engine
        self.name = name
        self.execution_id = execution_id
        self._spec = spec
        self._workdir = workdir
        self._grace = executor.kill_grace_s
        self._poll = executor.poll_s
        self._command_timeout = executor.settings.command_timeout_s
        self._failure: str | None = None  # an end that is neither the program's nor ours
        self._started_at = datetime.now(UTC)
        self._transport: asyncio.SubprocessTransport | None = None
        self._child: ChildProtocol | None = None
        # The attached CLI's working directory, which its conmon inherits: conmon drops an
        # ``oom`` file into it when the kernel kills the container for memory, so it must be
        # a directory of ours that goes with the container, not the worker's cwd.
        self._engine_cwd = Path(tempfile.mkdtemp(prefix=f"{name}-engine-"))

    @property
    def pid(self) -> int:
        """The pid of the engine CLI attached to the container (not a process in it)."""
        assert self._transport is not None, "run() starts the attached CLI"
        return int(self._transport.get_pid())

    async def run(self) -> None:
        """Start the created container attached; return once it runs (or ran)."""
        loop = asyncio.get_running_loop()
        try:
            self._transport, self._child = await loop.subprocess_exec(
                lambda: ChildProtocol(self._log, loop),
                *self.engine.argv("start", "--attach", self.name),
                cwd=self._engine_cwd,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            await self._until_running()
        except BaseException as exc:
            await asyncio.shield(self._abandon())
            if isinstance(exc, OSError):
                raise StartFailedError(f"cannot run {self.engine.path!r}: {exc}") from exc
            raise
        self._started_at = datetime.now(UTC)
        self._task = asyncio.create_task(self._supervise(), name=f"execution-{self.name}")

    async def _until_running(self) -> None:
        assert self._child is not None
        deadline = asyncio.get_running_loop().time() + self._command_timeout
        while True:
            attach_ended = self._child.exited.done()
            state = await self._inspect()
            if state is not None and state.status not in _NOT_STARTED:
                return
            if attach_ended or asyncio.get_running_loop().time() > deadline:
                await self._close_pipes()
                why = self._log.tails["stderr"].text().strip()[-2000:] or "it did not start"
                raise StartFailedError(
                    f"container {self.name} did not start: {why}", container=self.name
                )
            await asyncio.wait({self._child.exited}, timeout=self._poll)

    async def _abandon(self) -> None:
        await remove_container(self.engine, self.name, self._command_timeout)
        if self._transport is not None and self._transport.get_returncode() is None:
            with contextlib.suppress(ProcessLookupError):
                self._transport.kill()
        self._log.close()
        shutil.rmtree(self._engine_cwd, ignore_errors=True)

    async def _supervise(self) -> ExecutionResult:
        try:
            if not await self._exited_in_time():
                await self._stop_container()
            await self._close_pipes()
            state = await self._inspect()
            if state is not None and state.status == "running":
                # The attached CLI died, not the container: stop it, record why.
                self._failure = "the engine CLI attached to the container ended; stopped it"
                await self._stop_container()
                state = await self._inspect()
        finally:
            removed = asyncio.ensure_future(
                remove_container(self.engine, self.name, self._command_timeout)
            )
            await asyncio.shield(removed)
            shutil.rmtree(self._engine_cwd, ignore_errors=True)
        artifacts = await asyncio.to_thread(
            collect_artifacts, self._workdir, self._spec.artifacts_dir
        )
        return self._result(state, artifacts)

    async def _exited_in_time(self) -> bool:
        assert self._child is not None
        stopped = asyncio.ensure_future(self._stop.wait())
        waiters: set[asyncio.Future[Any]] = {self._child.exited, stopped}
        try:
            done, _ = await asyncio.wait(
                waiters, timeout=self._spec.timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stopped.cancel()
        if self._child.exited in done:
            return True
        self._request_stop("timeout", f"timed out after {self._spec.timeout_s:g} s")
        return False

    async def _stop_container(self) -> None:
        """``stop`` (SIGTERM, SIGKILL after the grace), then ``kill``, then kill the CLI."""
        assert self._child is not None and self._transport is not None
        grace = math.ceil(self._grace)
        steps = (
            self.engine.argv("stop", "-t", str(grace), self.name),
            self.engine.argv("kill", self.name),
        )
        for argv in steps:
            await run_engine(argv, grace + self._command_timeout)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._child.exited), self._command_timeout)
                return
        logger.warning("engine CLI still attached after stop; killing it", extra={"c": self.name})
        with contextlib.suppress(ProcessLookupError):
            self._transport.kill()
        await self._child.exited

    async def _close_pipes(self) -> None:
        assert self._child is not None and self._transport is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._child.closed), _DRAIN_S)
        self._transport.close()
        self._child.flush()
        self._log.close()

    async def _inspect(self) -> ContainerState | None:
        argv = self.engine.argv("inspect", "--format", "{{json .State}}", self.name)
        reply = await run_engine(argv, self._command_timeout)
        if reply.returncode != 0:
            return None
        try:
            return ContainerState.model_validate(json.loads(reply.stdout))
        except (ValueError, ValidationError):
            logger.warning("unreadable container state", extra={"state": reply.stdout[:500]})
            return None

    def _result(
        self, state: ContainerState | None, artifacts: list[ArtifactInfo]
    ) -> ExecutionResult:
        assert self._transport is not None
        code = state.exit_code if state is not None else self._transport.get_returncode()
        code = -1 if code is None else code
        memory_kill = self._spec.memory_limit_mib is not None and (
            code == _OOM_EXIT or (state is not None and state.oom_killed)
        )
        if self._failure is not None:
            self._detail = self._failure
        elif self._cause is None and memory_kill:
            self._cause = "memory"
            self._detail = (
                f"exit code {code} with a memory limit of {self._spec.memory_limit_mib} MiB: "
                "killed by the kernel's OOM killer"
            )
        return self._log.result(
            code=code,
            started_at=self._started_at,
            artifacts=artifacts,
            killed_by=self._cause,
            detail=self._detail or _explain(code),
            failed=self._failure is not None,
        )


def _explain(code: int) -> str:
    if code == 0:
        return ""
    if code > 128 and code - 128 in signal.valid_signals():
        return f"exited with status {code} (killed by {signal.Signals(code - 128).name})"
    return f"exited with status {code}"
