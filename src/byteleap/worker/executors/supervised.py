"""What every execution shares once its program runs: the log, wait, cancel and the stop request.

The process, container and Kubernetes executions differ in how they start, watch and end a
program; each runs one supervision task that returns the result and ends early when
``_stop`` is set, with ``_cause`` and ``_detail`` saying why.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

from byteleap.protocol.execution import ExecutionResult, KilledBy, LogLine
from byteleap.worker.executors.output import OutputLog, Recorder


class SupervisedExecution:
    def __init__(self, log: OutputLog) -> None:
        self._log = log
        self._stop = asyncio.Event()
        self._cause: KilledBy | None = None
        self._detail = ""
        self._task: asyncio.Task[ExecutionResult] | None = None

    async def logs(self) -> AsyncGenerator[LogLine, None]:
        async for line in self._log.follow():
            yield line

    def record(self, recorder: Recorder) -> int:
        """Hand ``recorder`` every blob of output (see `OutputLog.record`)."""
        return self._log.record(recorder)

    async def wait(self) -> ExecutionResult:
        assert self._task is not None, "the supervision starts with the program"
        return await asyncio.shield(self._task)

    async def cancel(self) -> ExecutionResult:
        self._request_stop("cancel", "cancelled on request")
        return await self.wait()

    def _request_stop(self, cause: KilledBy, detail: str) -> None:
        if self._cause is None and self._task is not None and not self._task.done():
            self._cause, self._detail = cause, detail
            self._stop.set()
