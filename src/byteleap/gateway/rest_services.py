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
from fastapi.responses import Response

from byteleap.gateway.proxy import METHODS
from byteleap.gateway.replica_stream import INVOKE_RESPONSES, ReplicaStream, proxy_request
from byteleap.gateway.request_guard import TenantFirstRoute, set_body_limit
from byteleap.gateway.rest_common import ERROR_RESPONSES, TenantDep
from byteleap.gateway.rest_openai import mount_openai
from byteleap.gateway.service_desk import ServiceDesk
from byteleap.protocol.service_spec import (
    ServiceLogs,
    ServiceScale,
    ServiceSpec,
    ServiceUpdate,
    ServiceView,
)

ServiceId = Annotated[str, Path(min_length=1, max_length=200)]
PREFIX = "/v1/services"
INVOKE_PATH = PREFIX + "/{service_id}/invoke/{path:path}"


def mount_services(app: FastAPI, desk: ServiceDesk) -> None:
    """Serve the desk's routes from the gateway's app (made by `create_rest_app`)."""
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

    @router.get("/{service_id}/logs", response_model=ServiceLogs)
    async def logs(
        service_id: ServiceId,
        tenant: TenantDep,
        after: Annotated[int, Query(ge=0)] = 0,
        replica: Annotated[str | None, Query(max_length=64)] = None,
    ) -> ServiceLogs:
        return await desk.logs(tenant, service_id, after=after, replica_id=replica)

    @router.delete("/{service_id}", response_model=ServiceView)
    async def delete(service_id: ServiceId, tenant: TenantDep) -> ServiceView:
        return await desk.delete(tenant, service_id)

    async def invoke(
        service_id: ServiceId, path: str, request: Request, tenant: TenantDep
    ) -> Response:
        forwarded = await proxy_request(request, "/" + path, max_body)
        return ReplicaStream(await desk.invoke(tenant, service_id, forwarded))

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
