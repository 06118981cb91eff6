"""OpenAI's HTTP API in front of a service whose spec says ``openai: true``.

``/v1/openai/{service}/v1/chat/completions``, ``/v1/completions`` (POST) and ``/v1/models``
(GET) go to the service's replicas at ``/v1/...`` through the same balancer and streaming
proxy as ``invoke``; ``{service}`` is the service's id or name. The tenant's API key is the
Bearer token, which is what OpenAI's clients send: ``OpenAI(base_url=f"{gateway}/v1/openai/
{service}/v1", api_key=key)``. Any other service, or one of another tenant, is 404.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Path, Request
from fastapi.responses import Response

from byteleap.gateway.replica_stream import INVOKE_RESPONSES, ReplicaStream, proxy_request
from byteleap.gateway.request_guard import TenantFirstRoute, set_body_limit
from byteleap.gateway.rest_common import ERROR_RESPONSES, TenantDep
from byteleap.gateway.service_desk import ServiceDesk

PREFIX = "/v1/openai"
ServiceRef = Annotated[str, Path(min_length=1, max_length=200)]
ROUTES = (  # (method, path under /v1/openai/{service}, operation)
    ("POST", "/v1/chat/completions", "chat_completions"),
    ("POST", "/v1/completions", "completions"),
    ("GET", "/v1/models", "models"),
)


def mount_openai(app: FastAPI, desk: ServiceDesk) -> None:
    app.include_router(openai_router(desk, ERROR_RESPONSES))
    for _, path, _ in ROUTES:
        set_body_limit(app, PREFIX + "/{service}" + path, desk.settings.services.max_request_bytes)


def openai_router(desk: ServiceDesk, errors: dict[int | str, dict[str, Any]]) -> APIRouter:
    router = APIRouter(
        prefix=PREFIX, tags=["openai"], responses=errors, route_class=TenantFirstRoute
    )
    max_body = desk.settings.services.max_request_bytes

    def forwarder(path: str) -> Any:
        async def forward(service: ServiceRef, request: Request, tenant: TenantDep) -> Response:
            service_id = await desk.openai_service(tenant, service)
            forwarded = await proxy_request(request, path, max_body)
            return ReplicaStream(await desk.invoke(tenant, service_id, forwarded))

        return forward

    for method, path, operation in ROUTES:
        router.add_api_route(
            "/{service}" + path,
            forwarder(path),
            methods=[method],
            name=f"openai_{operation}",
            summary=f"OpenAI API: {method} {path} of the service's replicas",
            response_class=Response,
            responses=INVOKE_RESPONSES,
        )
    return router
