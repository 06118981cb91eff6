"""The customer REST API (FastAPI) over the `CloudService` port.

Routes live under ``/v1`` (OpenAPI at ``/openapi.json``); each handler parses a typed body,
calls one port method and lets the error handlers map what it raises:

- `CloudError` → its ``status`` with ``{"error": reason, "detail": message, "field": …}``;
- request validation (pydantic) → 422 with ``field`` naming the first bad field;
- a body over ``max_body_bytes`` → 413, checked before anything parses it;
- unknown routes and methods → 404/405 in the same shape.

Authentication: ``Authorization: Bearer <api key>`` on every route but ``/v1/health``, the
public ``/v1/network/*`` view, ``/dashboard`` and ``/metrics`` (Prometheus).
"""

from __future__ import annotations

import contextlib
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from byteleap import metrics
from byteleap.cloud.gateway.dashboard import dashboard_router
from byteleap.cloud.gateway.errors import CloudError, InvalidSpec, Unauthorized
from byteleap.cloud.gateway.models import (
    MAX_LEASE_S,
    JobSpec,
    JobView,
    LeaseSpec,
    LeaseView,
    LogEntry,
)
from byteleap.cloud.gateway.network import NetworkView, network_router
from byteleap.cloud.gateway.port import CloudService, Tenant
from byteleap.cloud.gateway.request_metrics import RequestMetrics
from byteleap.cloud.gateway.sse import log_stream

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 8 << 20
JobId = Annotated[str, Path(min_length=1, max_length=200)]
LeaseId = Annotated[str, Path(min_length=1, max_length=200)]


class ErrorBody(BaseModel):
    error: str
    detail: str
    field: str | None = None


class LogPage(BaseModel):
    entries: list[LogEntry]
    next: int  # pass as ``after`` to get the lines that follow


class LeaseExtension(BaseModel):
    """How many seconds to add to a lease's end."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(gt=0, le=MAX_LEASE_S, allow_inf_nan=False)


class Health(BaseModel):
    status: str = "ok"


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 402, 404, 409, 413, 422, 429, 503)
}


def error_response(status: int, reason: str, detail: str, field: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = ErrorBody(error=reason, detail=detail, field=field)
    metrics.GATEWAY_ERRORS.labels(reason).inc()
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def create_rest_app(
    service: CloudService,
    *,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    network: NetworkView | None = None,
) -> FastAPI:
    """The gateway's app; with a ``network`` view it also serves the public
    ``/v1/network/*`` API and the ``/dashboard`` page drawn from it."""
    app = FastAPI(title="byteleap gateway", version="1", openapi_url="/openapi.json")
    app.state.cloud_service = service
    app.include_router(_health_router())
    app.include_router(_jobs_router(service))
    app.include_router(_leases_router(service))
    _include_artifacts_and_access(app, service)
    if network is not None:
        app.include_router(network_router(network))
        app.include_router(dashboard_router())
    app.mount("/metrics", metrics.asgi_app())  # type: ignore[arg-type]
    _install_error_handlers(app)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(RequestMetrics)
    return app


def _include_artifacts_and_access(app: FastAPI, service: CloudService) -> None:
    # Imported here: those modules build on this one's tenant dependency and error body.
    from byteleap.cloud.gateway.access import access_router
    from byteleap.cloud.gateway.rest_artifacts import artifacts_router

    app.include_router(artifacts_router(service))
    app.include_router(access_router(service))


def _health_router() -> APIRouter:
    router = APIRouter(prefix="/v1")

    @router.get("/health", response_model=Health)
    async def health() -> Health:
        return Health()

    return router


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")


async def _tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Tenant:
    if credentials is None:
        raise Unauthorized("missing API key: send Authorization: Bearer <api key>")
    service: CloudService = request.app.state.cloud_service
    return await service.authenticate(credentials.credentials)


TenantDep = Annotated[Tenant, Depends(_tenant)]


def _jobs_router(service: CloudService) -> APIRouter:
    router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=_ERRORS)

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
        await service.get_job(tenant, job_id)  # 404 now, not inside a 200 stream
        if follow or "text/event-stream" in request.headers.get("accept", ""):
            start = _resume_point(after, last_event_id)
            entries = service.job_logs(tenant, job_id, after=start, follow=True)
            return StreamingResponse(
                log_stream(entries, lambda: service.get_job(tenant, job_id)),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        return await _log_page(service, tenant, job_id, after, limit)

    return router


def _leases_router(service: CloudService) -> APIRouter:
    router = APIRouter(prefix="/v1/leases", tags=["leases"], responses=_ERRORS)

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
    try:
        async for entry in lines:
            entries.append(entry)
            if len(entries) >= limit:
                break
    finally:
        aclose = getattr(lines, "aclose", None)  # the port promises an iterator, not a generator
        if aclose is not None:
            await aclose()
    return LogPage(entries=entries, next=entries[-1].seq + 1 if entries else after)


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
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        response = error_response(exc.status_code, reason, str(exc.detail))
        response.headers.update(exc.headers or {})
        if exc.status_code == 405:  # Starlette lists only the first matching route's methods
            response.headers["Allow"] = ", ".join(_allowed_methods(request))
        return response

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal", "internal error")


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


class BodyLimit:
    """Answer 413 for a body over ``max_bytes``: by its Content-Length before reading, or
    by the bytes actually streamed (chunked uploads, lying headers); then replay the body."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._declared(scope) > self.max_bytes:
            await self._too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    @staticmethod
    def _declared(scope: Scope) -> int:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                with contextlib.suppress(ValueError):
                    return int(value)
        return 0

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, "payload_too_large", f"request body over {self.max_bytes} bytes"
        )
        await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # later calls wait for http.disconnect, as streaming needs

    return replayed
