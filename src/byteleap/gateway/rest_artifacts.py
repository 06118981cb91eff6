"""REST routes for a job's artifacts: the listing, and one file's bytes.

``GET /v1/jobs/{job_id}/artifacts`` lists what the gateway stored (path, size, sha256) and
what it rejected (with why); ``GET /v1/jobs/{job_id}/artifacts/{path}`` streams one stored
file (``ETag`` and ``X-Sha256`` carry its sha256). Another tenant's job is a 404; a path
that is not a clean relative one (``..``, absolute, ``//``) is a 422 naming ``path``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import StreamingResponse

from byteleap.gateway.port import CloudService
from byteleap.gateway.request_guard import TenantFirstRoute
from byteleap.gateway.rest_common import ErrorBody, TenantDep
from byteleap.protocol.artifacts import ArtifactListing

JobId = Annotated[str, Path(min_length=1, max_length=200)]
ArtifactPath = Annotated[str, Path(min_length=1, max_length=1024)]
_ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorBody} for code in (401, 404, 422)}


def artifacts_router(service: CloudService) -> APIRouter:
    router = APIRouter(
        prefix="/v1/jobs", tags=["artifacts"], responses=_ERRORS, route_class=TenantFirstRoute
    )

    @router.get("/{job_id}/artifacts", response_model=ArtifactListing)
    async def list_artifacts(job_id: JobId, tenant: TenantDep) -> ArtifactListing:
        return await service.list_artifacts(tenant, job_id)

    @router.get(
        "/{job_id}/artifacts/{path:path}",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": {}}}},
    )
    async def download(job_id: JobId, path: ArtifactPath, tenant: TenantDep) -> StreamingResponse:
        view, chunks = await service.open_artifact(tenant, job_id, path)
        name = view.path.rsplit("/", 1)[-1].replace('"', "")
        return StreamingResponse(
            chunks,
            media_type="application/octet-stream",
            headers={
                "Content-Length": str(view.size),
                "ETag": f'"{view.sha256}"',
                "X-Sha256": view.sha256,
                "Content-Disposition": f'attachment; filename="{name}"',
            },
        )

    return router
