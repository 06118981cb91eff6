"""What every REST router of the gateway shares: the error body and how an error is answered,
the tenant dependency (``Authorization: Bearer <api key>``), and the body limit's default.

The tenant is normally found by `RequestGuard` (request_guard.py) from the headers before the
body is read, and handed to the dependency through the request's state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.routing import BaseRoute

from byteleap import metrics
from byteleap.gateway.errors import Unauthorized
from byteleap.gateway.port import CloudService, Tenant
from byteleap.protocol.api import MAX_LEASE_S

DEFAULT_MAX_BODY_BYTES = 8 << 20
DEFAULT_BODY_TIMEOUT_S = 30.0
DEFAULT_KEY_RECHECK_S = 1.5
TENANT_STATE = "byteleap.tenant"  # where RequestGuard leaves the tenant it authenticated


class ErrorBody(BaseModel):
    error: str
    detail: str
    field: str | None = None


class LeaseExtension(BaseModel):
    """How many seconds to add to a lease's end."""

    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(gt=0, le=MAX_LEASE_S, allow_inf_nan=False)


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody} for code in (401, 402, 404, 409, 413, 422, 429, 503)
}


def error_response(status: int, reason: str, detail: str, field: str | None = None) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    body = ErrorBody(error=reason, detail=detail, field=field)
    metrics.GATEWAY_ERRORS.labels(reason).inc()
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")


def bearer_key(headers: Mapping[str, str]) -> str:
    """The API key of ``Authorization: Bearer <key>`` (lower-case header names); `Unauthorized`
    when there is none."""
    scheme, _, key = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized("missing API key: send Authorization: Bearer <api key>")
    return key.strip()


async def _tenant(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
) -> Tenant:
    found = getattr(request.state, TENANT_STATE, None)
    if isinstance(found, Tenant):
        return found
    if credentials is None:
        raise Unauthorized("missing API key: send Authorization: Bearer <api key>")
    service: CloudService = request.app.state.cloud_service
    return await service.authenticate(credentials.credentials)


TenantDep = Annotated[Tenant, Depends(_tenant)]


def needs_tenant(route: BaseRoute) -> bool:
    """Whether ``route`` takes a `TenantDep` (directly or through another dependency)."""
    dependant: Dependant | None = getattr(route, "dependant", None)
    pending = [dependant] if dependant is not None else []
    while pending:
        node = pending.pop()
        if node.call is _tenant:
            return True
        pending.extend(node.dependencies)
    return False
