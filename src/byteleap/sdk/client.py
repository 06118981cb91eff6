"""`AsyncClient`: the customer SDK's one implementation of the gateway's REST API.

The sync `Client` (``sdk.sync``) runs this same code on a private event loop, so the two
never drift apart. Errors are the `SdkError` tree in ``sdk.errors``.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import time
from collections.abc import AsyncGenerator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from byteleap.protocol.api import JobSpec, JobView, LeaseSpec, LeaseView, LogEntry
from byteleap.protocol.artifacts import ArtifactListing, check_artifact_path
from byteleap.sdk.access import ExecResult, ExecSession, open_exec
from byteleap.sdk.billing import BillingApi
from byteleap.sdk.ca_bundle import tls_context
from byteleap.sdk.errors import BadResponse, GatewayUnreachable, WaitTimedOut, error_for_status
from byteleap.sdk.gateway_address import gateway_base_url, why_unreachable
from byteleap.sdk.services import ServicesApi
from byteleap.sdk.sse import parse_events

LOG_PAGE = 1000
T = TypeVar("T")
_JOB_LIST = TypeAdapter(list[JobView])
_LEASE_LIST = TypeAdapter(list[LeaseView])


class _LogPage(BaseModel):
    entries: list[LogEntry]
    next: int
    more: bool = False  # cut by its bounds (a gateway before it was said: a full page)


class AsyncClient(ServicesApi, BillingApi):
    """An API-key client for one gateway (``base_url`` such as ``https://host:8080``; a
    trailing slash is dropped, an address that is no http(s) URL is an `SdkError` at once).

    ``ca_bundle`` is a PEM file of the CAs that sign the gateway's certificate, when the
    system does not trust it (default: ``$BYTELEAP_CA_BUNDLE``, else the system's CAs).
    ``transport`` replaces the network (an ``httpx.AsyncBaseTransport``, e.g.
    ``httpx.ASGITransport(app)`` to talk to an in-process app)."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
        ca_bundle: str | Path | None = None,
    ) -> None:
        self._timeout = timeout
        self._base_url, self._api_key = gateway_base_url(base_url), api_key
        self._tls = tls_context(ca_bundle)
        self._http = httpx.AsyncClient(
            base_url=self._base_url + "/v1",
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=timeout,
            transport=transport,
            verify=self._tls if self._tls is not None else True,
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def submit(
        self, spec: JobSpec | Mapping[str, Any], idempotency_key: str | None = None
    ) -> JobView:
        """Queue a job. A dict goes to the gateway as-is, so the gateway is the one judge of
        what is valid (an invalid one raises `InvalidRequest` naming the field)."""
        body = spec.model_dump(mode="json") if isinstance(spec, JobSpec) else dict(spec)
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = await self._request("POST", "/jobs", json=body, headers=headers)
        return _parse(JobView, response)

    async def get(self, job_id: str) -> JobView:
        return _parse(JobView, await self._request("GET", _job(job_id)))

    async def list(self, limit: int = 100) -> builtins.list[JobView]:
        response = await self._request("GET", "/jobs", params={"limit": limit})
        return _parse(_JOB_LIST, response)

    async def cancel(self, job_id: str) -> JobView:
        return _parse(JobView, await self._request("POST", f"{_job(job_id)}/cancel"))

    async def logs(self, job_id: str, after: int = 0) -> builtins.list[LogEntry]:
        """Every line logged so far, numbered ``after`` and up (fetched page by page)."""
        entries: builtins.list[LogEntry] = []
        while True:
            params = {"after": after, "limit": LOG_PAGE}
            page = _parse(
                _LogPage, await self._request("GET", f"{_job(job_id)}/logs", params=params)
            )
            entries.extend(page.entries)
            if not page.entries or (not page.more and len(page.entries) < LOG_PAGE):
                return entries
            after = page.next

    async def stream_logs(self, job_id: str, after: int = 0) -> AsyncGenerator[LogEntry, None]:
        """Lines as they are logged (Server-Sent Events), until the job ends; the gateway's
        error if it cuts the stream short (`Unauthorized` once the key is revoked)."""
        request = self._http.build_request(
            "GET",
            f"{_job(job_id)}/logs",
            params={"after": after, "follow": "true"},
            headers={"Accept": "text/event-stream"},
            timeout=httpx.Timeout(self._timeout, read=None),  # a quiet job is not a dead one
        )
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._unreachable("GET", f"{_job(job_id)}/logs", exc) from exc
        try:
            if response.is_error:
                await response.aread()
                _raise_for(response)
            async for event in parse_events(response.aiter_lines()):
                if event.event == "end":
                    return
                if event.event == "log":
                    yield _parse_json(LogEntry, event.data)
                if event.event == "error":
                    raise _stream_error(event.data)
        except httpx.TransportError as exc:
            raise GatewayUnreachable(
                f"log stream of {job_id} broke: {why_unreachable(exc)}"
            ) from exc
        finally:
            await response.aclose()
        raise GatewayUnreachable(f"log stream of {job_id} ended before the job did")

    async def wait(self, job_id: str, timeout_s: float = 3600.0, poll_s: float = 1.0) -> JobView:
        """Poll until the job reaches a terminal state; `WaitTimedOut` after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while True:
            view = await self.get(job_id)
            if view.state.is_terminal:
                return view
            left = deadline - time.monotonic()
            if left <= 0:
                raise WaitTimedOut(
                    f"job {job_id} still {view.state} after {timeout_s}s", state=view.state
                )
            await asyncio.sleep(min(poll_s, left))

    async def artifacts(self, job_id: str) -> ArtifactListing:
        """The files the gateway kept for a finished job (path, size, sha256), and those it
        rejected with why."""
        return _parse(ArtifactListing, await self._request("GET", f"{_job(job_id)}/artifacts"))

    async def download_artifact(self, job_id: str, path: str, directory: Path) -> Path:
        """Save one artifact as ``directory/path`` (its sha256 checked); returns the file."""
        target = _inside(directory, path)
        url = f"{_job(job_id)}/artifacts/{quote(path, safe='/')}"
        try:
            async with self._http.stream("GET", url) as response:
                if response.is_error:
                    await response.aread()
                    _raise_for(response)
                await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
                partial = target.with_name(target.name + ".partial")
                digest = hashlib.sha256()
                with await asyncio.to_thread(open, partial, "wb") as out:
                    async for chunk in response.aiter_bytes():
                        digest.update(chunk)
                        await asyncio.to_thread(out.write, chunk)
        except httpx.TransportError as exc:
            raise GatewayUnreachable(f"download of {path} broke: {why_unreachable(exc)}") from exc
        expected = response.headers.get("x-sha256")
        if expected != digest.hexdigest():
            partial.unlink(missing_ok=True)
            got = digest.hexdigest()
            raise BadResponse(f"{path}: sha256 {got} is not the announced {expected}")
        partial.replace(target)
        return target

    async def download_artifacts(self, job_id: str, directory: Path) -> builtins.list[Path]:
        """Save every artifact of the job under ``directory``; returns the files."""
        listing = await self.artifacts(job_id)
        return [await self.download_artifact(job_id, a.path, directory) for a in listing.artifacts]

    async def open_exec(
        self,
        lease_id: str,
        command: builtins.list[str] | None = None,
        *,
        tty: bool = False,
        env: dict[str, str] | None = None,
        size: tuple[int, int] | None = None,
        ssh: bool = False,
    ) -> ExecSession:
        """An exec session on the lease's worker: ``command``, or an interactive shell (with
        ``tty``, ``size`` is the terminal's (rows, columns)); with ``ssh``, one SSH connection
        (see `byteleap.sdk.access.open_exec`)."""
        return await open_exec(
            self._base_url, self._api_key, lease_id, command, tty=tty, env=env, size=size,
            open_timeout_s=self._timeout, tls=self._tls, ssh=ssh,
        )  # fmt: skip

    async def exec(
        self, lease_id: str, command: builtins.list[str], stdin: bytes = b""
    ) -> ExecResult:
        """Run ``command`` on the lease's worker with ``stdin``; its output and exit code."""
        async with await self.open_exec(lease_id, command) as session:
            await session.send(stdin, eof=True)
            return await session.collect()

    async def create_lease(self, spec: LeaseSpec | Mapping[str, Any]) -> LeaseView:
        """Reserve a worker now and start paying for it; `Unavailable` when none fits.
        A dict goes to the gateway as-is, as in `submit`."""
        body = spec.model_dump(mode="json") if isinstance(spec, LeaseSpec) else dict(spec)
        return _parse(LeaseView, await self._request("POST", "/leases", json=body))

    async def get_lease(self, lease_id: str) -> LeaseView:
        return _parse(LeaseView, await self._request("GET", _lease(lease_id)))

    async def list_leases(self, limit: int = 100) -> builtins.list[LeaseView]:
        response = await self._request("GET", "/leases", params={"limit": limit})
        return _parse(_LEASE_LIST, response)

    async def extend_lease(self, lease_id: str, seconds: float) -> LeaseView:
        """Push the lease's end back by ``seconds``; `Conflict` once it has ended."""
        body = {"seconds": seconds}
        return _parse(
            LeaseView, await self._request("POST", f"{_lease(lease_id)}/extend", json=body)
        )

    async def release_lease(self, lease_id: str) -> LeaseView:
        """End the lease now; billing stops. `Conflict` once it has ended."""
        return _parse(LeaseView, await self._request("POST", f"{_lease(lease_id)}/release"))

    async def _stream(self, method: str, path: str, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        """The answer's body as it arrives, chunk by chunk; the gateway's error raised if it
        answers one. Each wait for a chunk is bounded by the client's timeout."""
        request = self._http.build_request(method, path, **kwargs)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.TransportError as exc:
            raise self._unreachable(method, path, exc) from exc
        try:
            if response.is_error:
                await response.aread()
                _raise_for(response)
            async for chunk in response.aiter_bytes():
                yield chunk
        except httpx.TransportError as exc:
            raise self._unreachable(method, path, exc) from exc
        finally:
            await response.aclose()

    async def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise self._unreachable(method, path, exc) from exc
        _raise_for(response)
        return response

    def _unreachable(self, method: str, path: str, exc: Exception) -> GatewayUnreachable:
        return GatewayUnreachable(
            f"cannot reach the gateway at {self._base_url} ({method} /v1{path}): "
            + why_unreachable(exc)
        )


def _inside(directory: Path, path: str) -> Path:
    """``directory/path``, refusing a path that would land outside ``directory``."""
    try:
        check_artifact_path(path)
    except ValueError as exc:
        raise BadResponse(f"refusing artifact path {path!r}: {exc}") from None
    return directory / path


def _job(job_id: str) -> str:
    return f"/jobs/{quote(job_id, safe='')}"


def _lease(lease_id: str) -> str:
    return f"/leases/{quote(lease_id, safe='')}"


def _raise_for(response: httpx.Response) -> None:
    if not response.is_error:
        return
    try:
        body = response.json()
        reason, detail = str(body["error"]), str(body.get("detail", ""))
        field = body.get("field")
    except (ValueError, KeyError, TypeError):
        reason, detail, field = "http_error", response.text[:500], None
    raise error_for_status(response.status_code, reason, detail, field)


class _StreamError(BaseModel):
    status: int
    error: str
    detail: str = ""


def _stream_error(data: str) -> Exception:
    body = _parse_json(_StreamError, data)
    return error_for_status(body.status, body.error, body.detail)


def _parse(model: type[T] | TypeAdapter[T], response: httpx.Response) -> T:
    return _parse_json(model, response.text)


def _parse_json(model: type[T] | TypeAdapter[T], text: str) -> T:
    adapter = model if isinstance(model, TypeAdapter) else TypeAdapter(model)
    try:
        return adapter.validate_json(text)
    except ValidationError as exc:
        raise BadResponse(f"unexpected answer from the gateway: {exc}") from exc
