"""The customer REST API (FastAPI) over the `CloudService` port.

Routes live under ``/v1`` (OpenAPI at ``/openapi.json``); each handler parses a typed body,
calls one port method and lets the error handlers map what it raises:

- `CloudError` → its ``status`` with ``{"error": reason, "detail": message, "field": …}``;
- request validation (pydantic) → 422 with ``field`` naming the first bad field;
- a body over ``max_body_bytes`` → 413, one slower than ``body_timeout_s`` → 408;
- unknown routes and methods → 404/405 in the same shape.

Authentication: ``Authorization: Bearer <api key>`` on every route but ``/v1/health``, the
public ``/v1/network/*`` view and ``/dashboard``. Prometheus is not on this app: the runner
serves it on ``metrics_port`` at 127.0.0.1 (request and job counts are the operator's). The key is
checked before any byte of the body is read (request_guard.py); a followed log stream
re-checks it every ``key_recheck_s`` and ends with an ``error`` event once it is revoked.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from byteleap.gateway.access import access_router
from byteleap.gateway.dashboard import dashboard_router
from byteleap.gateway.errors import CloudError, InvalidSpec, KeyRevoked
from byteleap.gateway.key_watch import until_revoked
from byteleap.gateway.network import NetworkView, network_router
from byteleap.gateway.port import CloudService, Tenant
from byteleap.gateway.request_guard import TenantFirstRoute, guard_requests
from byteleap.gateway.request_metrics import RequestMetrics
from byteleap.gateway.rest_artifacts import artifacts_router
from byteleap.gateway.rest_common import (
    DEFAULT_BODY_TIMEOUT_S,
    DEFAULT_KEY_RECHECK_S,
    DEFAULT_MAX_BODY_BYTES,
    ERROR_RESPONSES,
    LeaseExtension,
    TenantDep,
    bearer_key,
    error_response,
)
from byteleap.gateway.sse import error_event, log_stream
from byteleap.protocol.api import (
    JobSpec,
    JobView,
    LeaseSpec,
    LeaseView,
    LogEntry,
)

log = logging.getLogger(__name__)

JobId = Annotated[str, Path(min_length=1, max_length=200)]
LeaseId = Annotated[str, Path(min_length=1, max_length=200)]


#: The most a page of log entries carries, as JSON.
MAX_LOG_PAGE_BYTES = 1 << 20


class LogPage(BaseModel):
    """Log lines from ``after`` on: at most ``limit`` of them and about 1 MiB."""

    entries: list[LogEntry]
    next: int = Field(description="pass as `after` to get the lines that follow")
    more: bool = Field(
        default=False, description="the page was cut by its bounds: more lines are there now"
    )


class Health(BaseModel):
    status: str = "ok"


def create_rest_app(
    service: CloudService,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    body_timeout_s: float = DEFAULT_BODY_TIMEOUT_S,
    key_recheck_s: float = DEFAULT_KEY_RECHECK_S,
    network: NetworkView | None = None,
) -> FastAPI:
    """The gateway's app; with a ``network`` view it also serves the public
    ``/v1/network/*`` API and the ``/dashboard`` page drawn from it."""
    app = FastAPI(title="byteleap gateway", version="1", openapi_url="/openapi.json")
    app.state.cloud_service = service
    app.include_router(_health_router())
    app.include_router(_jobs_router(service, key_recheck_s))
    app.include_router(_leases_router(service))
    app.include_router(artifacts_router(service))
    app.include_router(access_router(service, key_recheck_s))
    if network is not None:
        app.include_router(network_router(network))
        app.include_router(dashboard_router())
    _install_error_handlers(app)
    guard_requests(app, max_body_bytes=max_body_bytes, body_timeout_s=body_timeout_s)
    app.add_middleware(RequestMetrics)
    return app


def _health_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/health", response_model=Health)
    async def health() -> Health:
        return Health()

    return router


def _jobs_router(service: CloudService, key_recheck_s: float) -> APIRouter:
    router = APIRouter(
        prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES, route_class=TenantFirstRoute
    )

    @router.post("", response_model=JobView, status_code=201)
    async def submit(
        spec: JobSpec,
        tenant: TenantDep,
        idempotency_key: Annotated[str | None, Header(min_length=1, max_length=200)] = None,
    ) -> JobView:
        return await service.submit_job(tenant, _with_idempotency_key(spec, idempotency_key))

    @router.get("", response_model=list[JobView])
    async def list_jobs(
        tenant: TenantDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[JobView]:
        return await service.list_jobs(tenant, limit=limit)

    @router.get("/{job_id}", response_model=JobView)
    async def get_job(job_id: JobId, tenant: TenantDep) -> JobView:
        return await service.get_job(tenant, job_id)

    @router.post("/{job_id}/cancel", response_model=JobView)
    async def cancel(job_id: JobId, tenant: TenantDep) -> JobView:
        return await service.cancel_job(tenant, job_id)

    @router.get(
        "/{job_id}/logs",
        response_model=LogPage,
        responses={200: {"content": {"text/event-stream": {}}}},
    )
    async def logs(
        job_id: JobId,
        tenant: TenantDep,
        request: Request,
        after: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
        follow: bool = False,
        last_event_id: Annotated[str | None, Header(max_length=32)] = None,
    ) -> LogPage | StreamingResponse:
        """A job's whole log (up to the miner's caps), read by line number: a page from line
        ``after`` (at most ``limit`` lines and 1 MiB; ``more`` says to ask again from
        ``next``), or a live stream of Server-Sent Events with ``follow`` (or
        ``Accept: text/event-stream``), resumed after ``Last-Event-ID``."""
        await service.get_job(tenant, job_id)  # 404 now, not inside a 200 stream
        if follow or "text/event-stream" in request.headers.get("accept", ""):
            start = _resume_point(after, last_event_id)
            entries = service.job_logs(tenant, job_id, after=start, follow=True)
            events = log_stream(entries, lambda: service.get_job(tenant, job_id))
            key = bearer_key(request.headers)
            return StreamingResponse(
                _ended_by_revocation(until_revoked(events, service, key, key_recheck_s)),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await _log_page(service, tenant, job_id, after, limit)

    return router


def _leases_router(service: CloudService) -> APIRouter:
    router = APIRouter(
        prefix="/v1/leases",
        tags=["leases"],
        responses=ERROR_RESPONSES,
        route_class=TenantFirstRoute,
    )

    @router.post("", response_model=LeaseView, status_code=201)
    async def create(spec: LeaseSpec, tenant: TenantDep) -> LeaseView:
        return await service.create_lease(tenant, spec)

    @router.get("", response_model=list[LeaseView])
    async def list_leases(
        tenant: TenantDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[LeaseView]:
        return await service.list_leases(tenant, limit=limit)

    @router.get("/{lease_id}", response_model=LeaseView)
    async def get_lease(lease_id: LeaseId, tenant: TenantDep) -> LeaseView:
        return await service.get_lease(tenant, lease_id)

    @router.post("/{lease_id}/extend", response_model=LeaseView)
    async def extend(lease_id: LeaseId, body: LeaseExtension, tenant: TenantDep) -> LeaseView:
        return await service.extend_lease(tenant, lease_id, body.seconds)

    @router.post("/{lease_id}/release", response_model=LeaseView)
    async def release(lease_id: LeaseId, tenant: TenantDep) -> LeaseView:
        return await service.release_lease(tenant, lease_id)

    return router


async def _log_page(
    service: CloudService, tenant: Tenant, job_id: str, after: int, limit: int
) -> LogPage:
    entries: list[LogEntry] = []
    lines = service.job_logs(tenant, job_id, after=after)
    size, more = 0, False
    try:
        async for entry in lines:
            size += len(entry.model_dump_json()) + 1
            if entries and (size > MAX_LOG_PAGE_BYTES or len(entries) >= limit):
                more = True
                break
            entries.append(entry)
    finally:
        aclose = getattr(lines, "aclose", None)  # the port promises an iterator, not a generator
        if aclose is not None:
            await aclose()
    return LogPage(entries=entries, next=entries[-1].seq + 1 if entries else after, more=more)


async def _ended_by_revocation(events: AsyncGenerator[str, None]) -> AsyncIterator[str]:
    """``events``, and a last ``error`` event if the key was revoked while they ran."""
    try:
        async for event in events:
            yield event
    except KeyRevoked as exc:
        yield error_event(exc.status, exc.reason, str(exc))
    finally:
        await events.aclose()


def _resume_point(after: int, last_event_id: str | None) -> int:
    """Where a stream starts: after the last event the client saw, if it says so (an
    unreadable Last-Event-ID is ignored, as the SSE spec treats it as opaque)."""
    if last_event_id and last_event_id.isascii() and last_event_id.isdigit():
        return max(after, int(last_event_id) + 1)
    return after


def _with_idempotency_key(spec: JobSpec, header: str | None) -> JobSpec:
    if header is None or header == spec.idempotency_key:
        return spec
    if spec.idempotency_key is not None:
        raise InvalidSpec(
            "the Idempotency-Key header and the body's idempotency_key differ",
            field="idempotency_key",
        )
    return spec.model_copy(update={"idempotency_key": header})


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CloudError)
    async def _cloud_error(request: Request, exc: CloudError) -> JSONResponse:
        return error_response(exc.status, exc.reason, str(exc), getattr(exc, "field", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        where, field = _field_of(errors[0]["loc"]) if errors else ("body", None)
        if errors and errors[0]["type"] == "json_invalid":
            field = None  # the loc is a character offset, not a field
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors[:5])
        reason = InvalidSpec.reason if where == "body" else "invalid_request"
        return error_response(422, reason, detail or "invalid request", field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not decode the body: invalid, like the rest
            return error_response(422, InvalidSpec.reason, str(exc.detail))
        reason = _HTTP_REASONS.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, reason, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Starlette lists only the first matching route's methods
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error")


_HTTP_REASONS = {
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
}


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.routes:
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def _field_of(loc: tuple[Any, ...] | list[Any]) -> tuple[str, str | None]:
    """(where, dotted field) from a pydantic ``loc`` such as ("body", "resources", "ram_mib")."""
    where = str(loc[0]) if loc else "body"
    rest = [str(part) for part in loc[1:]]
    return where, ".".join(rest) or (where if where != "body" else None)
