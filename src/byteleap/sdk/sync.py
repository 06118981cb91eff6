"""`Client`: the blocking SDK, a thin wrapper that runs `AsyncClient` on a private event loop
in a background thread (one per client). Each method is one line, so sync and async cannot
drift apart; it works from plain scripts and from inside someone else's running loop alike.
"""

from __future__ import annotations

import asyncio
import builtins
import threading
from collections.abc import Coroutine, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from byteleap.protocol.api import JobSpec, JobView, LeaseSpec, LeaseView, LogEntry
from byteleap.protocol.artifacts import ArtifactListing
from byteleap.protocol.exec_frames import ExecExited, ExecOutput
from byteleap.sdk.access import ExecResult, ExecSession
from byteleap.sdk.billing import SyncBillingApi
from byteleap.sdk.blocking import iterate
from byteleap.sdk.client import AsyncClient
from byteleap.sdk.services import SyncServicesApi

T = TypeVar("T")


class _LoopThread:
    """An event loop running in a daemon thread; `run` blocks until a coroutine is done."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="byteleap-sdk", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C in the caller: stop the coroutine too, not just our wait for it
            future.cancel()
            raise

    @property
    def closed(self) -> bool:
        return self._loop.is_closed()

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()


class SyncExecSession:
    """The blocking twin of `ExecSession`."""

    def __init__(self, loop: _LoopThread, session: ExecSession) -> None:
        self._loop = loop
        self._session = session

    def send(self, data: bytes = b"", *, eof: bool = False) -> None:
        self._loop.run(self._session.send(data, eof=eof))

    def recv(self) -> ExecOutput | ExecExited:
        return self._loop.run(self._session.recv())

    def collect(self) -> ExecResult:
        return self._loop.run(self._session.collect())

    def resize(self, rows: int, cols: int) -> None:
        self._loop.run(self._session.resize(rows, cols))

    def stop(self) -> None:
        self._loop.run(self._session.stop())

    def close(self) -> None:
        self._loop.run(self._session.close())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Client(SyncServicesApi, SyncBillingApi):
    """The blocking twin of `AsyncClient`; same arguments (``transport`` is still an
    ``httpx.AsyncBaseTransport``), same methods, same errors."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_bundle: str | Path | None = None,
    ) -> None:
        # Built before the loop thread: a bad CA bundle raises here with nothing to stop.
        client = AsyncClient(
            base_url, api_key, timeout=timeout, transport=transport, ca_bundle=ca_bundle
        )
        self._loop = _LoopThread()
        self._client = client

    def close(self) -> None:
        try:
            self._loop.run(self._client.aclose())
        finally:
            self._loop.stop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def submit(
        self, spec: JobSpec | Mapping[str, Any], idempotency_key: str | None = None
    ) -> JobView:
        return self._loop.run(self._client.submit(spec, idempotency_key))

    def get(self, job_id: str) -> JobView:
        return self._loop.run(self._client.get(job_id))

    def list(self, limit: int = 100) -> builtins.list[JobView]:
        return self._loop.run(self._client.list(limit))

    def cancel(self, job_id: str) -> JobView:
        return self._loop.run(self._client.cancel(job_id))

    def logs(self, job_id: str, after: int = 0) -> builtins.list[LogEntry]:
        return self._loop.run(self._client.logs(job_id, after))

    def wait(self, job_id: str, timeout_s: float = 3600.0, poll_s: float = 1.0) -> JobView:
        return self._loop.run(self._client.wait(job_id, timeout_s, poll_s))

    def artifacts(self, job_id: str) -> ArtifactListing:
        return self._loop.run(self._client.artifacts(job_id))

    def download_artifact(self, job_id: str, path: str, directory: Path) -> Path:
        return self._loop.run(self._client.download_artifact(job_id, path, directory))

    def download_artifacts(self, job_id: str, directory: Path) -> builtins.list[Path]:
        return self._loop.run(self._client.download_artifacts(job_id, directory))

    def open_exec(
        self,
        lease_id: str,
        command: builtins.list[str] | None = None,
        *,
        tty: bool = False,
        env: dict[str, str] | None = None,
        size: tuple[int, int] | None = None,
        ssh: bool = False,
    ) -> SyncExecSession:
        opening = self._client.open_exec(lease_id, command, tty=tty, env=env, size=size, ssh=ssh)
        session = self._loop.run(opening)
        return SyncExecSession(self._loop, session)

    def exec(self, lease_id: str, command: builtins.list[str], stdin: bytes = b"") -> ExecResult:
        return self._loop.run(self._client.exec(lease_id, command, stdin))

    def create_lease(self, spec: LeaseSpec | Mapping[str, Any]) -> LeaseView:
        return self._loop.run(self._client.create_lease(spec))

    def get_lease(self, lease_id: str) -> LeaseView:
        return self._loop.run(self._client.get_lease(lease_id))

    def list_leases(self, limit: int = 100) -> builtins.list[LeaseView]:
        return self._loop.run(self._client.list_leases(limit))

    def extend_lease(self, lease_id: str, seconds: float) -> LeaseView:
        return self._loop.run(self._client.extend_lease(lease_id, seconds))

    def release_lease(self, lease_id: str) -> LeaseView:
        return self._loop.run(self._client.release_lease(lease_id))

    def stream_logs(self, job_id: str, after: int = 0) -> Iterator[LogEntry]:
        return iterate(self._loop, self._client.stream_logs(job_id, after))
