"""REST routes of inference services (``/v1/services``), mounted by `create_rest_app` when
the gateway runs a `ServiceDesk`.

``ANY /v1/services/{id}/invoke/{path}`` forwards the request (method, path, query, headers
but the API key, body up to ``max_request_bytes``) to a ready replica and answers with what
it answered, streamed as it arrives (chunked; server-sent events unbuffered); 502 when no
replica could be reached, 503 when none is ready, 504 when its answer did not begin in time.
The request's body is read whole first (it is bounded); the answer's is never held whole.
It is one route per method, so each has an operation id of its own in the OpenAPI spec.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from byteleap.gateway.errors import PayloadTooLarge
from byteleap.gateway.proxy import METHODS, ProxyRequest, ProxyResponse
from byteleap.gateway.request_guard import TenantFirstRoute, set_body_limit
from byteleap.gateway.rest_common import ERROR_RESPONSES, ErrorBody, TenantDep
from byteleap.gateway.service_desk import ServiceDesk
from byteleap.protocol.service_spec import ServiceScale, ServiceSpec, ServiceUpdate, ServiceView

ServiceId = Annotated[str, Path(min_length=1, max_length=200)]
PREFIX = "/v1/services"
INVOKE_PATH = PREFIX + "/{service_id}/invoke/{path:path}"
INVOKE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "The replica's answer: its status, headers and body, as it sent them"},
    502: {"model": ErrorBody, "description": "No replica could be reached"},
    504: {"model": ErrorBody, "description": "The replica did not answer in time"},
}


class ReplicaStream(StreamingResponse):
    """The replica's answer, passed on chunk by chunk as it arrives; the exchange with the
    replica is released however the response ends (a client gone mid-stream included)."""

    def __init__(self, answer: ProxyResponse) -> None:
        super().__init__(answer.body(), status_code=answer.status)
        self._answer = answer
        for name, value in answer.headers:
            self.headers.append(name, value)
        if self.headers.get("content-type", "").startswith("text/event-stream"):
            # a reverse proxy in front (nginx) would otherwise hold events back
            self.headers["x-accel-buffering"] = "no"
            self.headers.setdefault("cache-control", "no-cache")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await self._answer.close()


def relay(answer: ProxyResponse) -> Response:
    return ReplicaStream(answer)


def mount_services(app: FastAPI, desk: ServiceDesk) -> None:
    """Serve the desk's routes from the gateway's app (made by `create_rest_app`)."""
    from byteleap.gateway.rest_openai import mount_openai  # it builds on this module

    app.include_router(services_router(desk, ERROR_RESPONSES))
    set_body_limit(app, INVOKE_PATH, desk.settings.services.max_request_bytes)
    mount_openai(app, desk)


def services_router(desk: ServiceDesk, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(
        prefix=PREFIX, tags=["services"], responses=errors, route_class=TenantFirstRoute
    )
    max_body = desk.settings.services.max_request_bytes

    @router.post("", response_model=ServiceView, status_code=201)
    async def create(spec: ServiceSpec, tenant: TenantDep) -> ServiceView:
        return await desk.create(tenant, spec)

    @router.get("", response_model=list[ServiceView])
    async def list_services(
        tenant: TenantDep, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> list[ServiceView]:
        return await desk.list_for(tenant, limit=limit)

    @router.get("/{service_id}", response_model=ServiceView)
    async def get(service_id: ServiceId, tenant: TenantDep) -> ServiceView:
        return await desk.get(tenant, service_id)

    @router.post("/{service_id}/scale", response_model=ServiceView)
    async def scale(service_id: ServiceId, body: ServiceScale, tenant: TenantDep) -> ServiceView:
        return await desk.scale(tenant, service_id, body)

    @router.post("/{service_id}/update", response_model=ServiceView)
    async def update(service_id: ServiceId, body: ServiceUpdate, tenant: TenantDep) -> ServiceView:
        return await desk.update(tenant, service_id, body)

    @router.delete("/{service_id}", response_model=ServiceView)
    async def delete(service_id: ServiceId, tenant: TenantDep) -> ServiceView:
        return await desk.delete(tenant, service_id)

    async def invoke(
        service_id: ServiceId, path: str, request: Request, tenant: TenantDep
    ) -> Response:
        body = await request.body()
        if len(body) > max_body:
            raise PayloadTooLarge(f"a request to a service may carry at most {max_body} bytes")
        answer = await desk.invoke(
            tenant,
            service_id,
            ProxyRequest(
                method=request.method,
                path="/" + path,
                query=request.url.query,
                headers=list(request.headers.items()),
                body=body,
            ),
        )
        return relay(answer)

    for method in METHODS:
        router.add_api_route(
            INVOKE_PATH.removeprefix(PREFIX),
            invoke,
            methods=[method],
            name=f"invoke_{method.lower()}",
            summary=f"Invoke the service ({method})",
            response_class=Response,
            responses=INVOKE_RESPONSES,
        )
    return router
