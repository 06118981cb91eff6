"""The customer gRPC API (grpc.aio) over the `CloudService` port, next to the REST one.

The contract is ``proto/byteleap/gateway/v1/gateway.proto``; its Python code is generated into
``_pb/`` by the build (`protogen`). Each RPC authenticates from the ``authorization: Bearer
<api key>`` metadata, calls one port method and converts the view; what it raises is mapped
once, in `_abort`:

- `CloudError` → its ``grpc_code``, the message as details, trailing metadata ``reason`` (and
  ``field`` for `InvalidSpec`);
- a spec that fails its pydantic model → `InvalidSpec` (INVALID_ARGUMENT) naming the field;
- anything else → INTERNAL "internal error" (logged, never shown).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias, TypeVar

import grpc
from pydantic import BaseModel, ValidationError

from byteleap.cloud.gateway import protogen
from byteleap.cloud.gateway.errors import CloudError, InvalidSpec, Unauthorized
from byteleap.cloud.gateway.models import (
    JobSpec,
    JobState,
    JobView,
    LeaseSpec,
    LeaseState,
    LeaseView,
    LogEntry,
)
from byteleap.cloud.gateway.port import CloudService, Tenant
from byteleap.cloud.gateway.rest import DEFAULT_MAX_BODY_BYTES, LeaseExtension

try:
    from byteleap.cloud.gateway._pb import gateway_pb2 as pb
    from byteleap.cloud.gateway._pb import gateway_pb2_grpc as pb_grpc
except ModuleNotFoundError as exc:  # a checkout where the build step has not run yet
    if not (exc.name or "").startswith("byteleap.cloud.gateway._pb"):
        raise
    raise ImportError(
        f"the gateway's gRPC code is not generated: run `{protogen.COMMAND}` (`make venv` does it)"
    ) from exc

if TYPE_CHECKING:
    from byteleap.cloud.gateway.services import ServiceDesk

log = logging.getLogger(__name__)

DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
M = TypeVar("M", bound=BaseModel)
Context: TypeAlias = grpc.aio.ServicerContext

JOB_STATES: dict[JobState, pb.JobState] = {
    s: pb.JobState.Value(f"JOB_STATE_{s.name}") for s in JobState
}
LEASE_STATES: dict[LeaseState, pb.LeaseState] = {
    s: pb.LeaseState.Value(f"LEASE_STATE_{s.name}") for s in LeaseState
}


def job_message(view: JobView) -> pb.Job:
    return pb.Job(
        id=view.id,
        state=JOB_STATES[view.state],
        attempts=view.attempts,
        worker_id=view.worker_id,
        miner_hotkey=view.miner_hotkey,
        created_at=view.created_at,
        started_at=view.started_at,
        finished_at=view.finished_at,
        exit_code=view.exit_code,
        error=view.error,
        cost=view.cost,
        json=view.model_dump_json(),
    )


def lease_message(view: LeaseView) -> pb.Lease:
    return pb.Lease(
        id=view.id,
        state=LEASE_STATES[view.state],
        worker_id=view.worker_id,
        miner_hotkey=view.miner_hotkey,
        gpu_model=view.gpu_model,
        gpu_count=view.gpu_count,
        price_per_s=view.price_per_s,
        created_at=view.created_at,
        ends_at=view.ends_at,
        ended_at=view.ended_at,
        cost=view.cost,
        json=view.model_dump_json(),
    )


def log_message(entry: LogEntry) -> pb.LogEvent:
    return pb.LogEvent(
        entry=pb.LogEntry(seq=entry.seq, stream=entry.stream, line=entry.line, ts=entry.ts)
    )


def parse_spec(model: type[M], raw: str | dict[str, Any], field: str = "spec_json") -> M:
    """``raw`` (JSON text or a dict) validated by ``model``; `InvalidSpec` naming the first bad
    field (``field`` itself when the text is not a JSON object at all)."""
    try:
        return model.model_validate_json(raw) if isinstance(raw, str) else model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        loc = [] if errors[0]["type"] == "json_invalid" else errors[0]["loc"]
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) or field}: {e['msg']}" for e in errors)
        raise InvalidSpec(detail, field=".".join(map(str, loc)) or field) from exc


async def _abort(context: Context, exc: Exception) -> NoReturn:
    if isinstance(exc, grpc.aio.AbortError):
        raise exc  # already aborted, by a handler that knew better
    if isinstance(exc, CloudError):
        trailers = [("reason", exc.reason)]
        if isinstance(exc, InvalidSpec):
            trailers.append(("field", exc.field))
        code = getattr(grpc.StatusCode, exc.grpc_code)
        await context.abort(code, str(exc), tuple(trailers))  # grpc wants a tuple, not a list
    log.error("unhandled error in a gRPC call", exc_info=exc)
    await context.abort(grpc.StatusCode.INTERNAL, "internal error", (("reason", "internal"),))
    raise AssertionError("context.abort returned")  # it raises; this keeps NoReturn honest


Unary = Callable[[Any, Any, Context], Awaitable[Any]]
Streaming = Callable[[Any, Any, Context], AsyncIterator[Any]]


def _unary(method: Unary) -> Unary:
    @functools.wraps(method)
    async def handle(self: Any, request: Any, context: Context) -> Any:
        try:
            return await method(self, request, context)
        except Exception as exc:
            await _abort(context, exc)

    return handle


def _streaming(method: Streaming) -> Streaming:
    @functools.wraps(method)
    async def handle(self: Any, request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for message in method(self, request, context):
                yield message
        except Exception as exc:
            await _abort(context, exc)

    return handle


def _limit(requested: int) -> int:
    if requested > MAX_LIST_LIMIT:
        raise InvalidSpec(f"limit: at most {MAX_LIST_LIMIT}", field="limit")
    return requested or DEFAULT_LIST_LIMIT


def _api_key(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    for key, value in metadata or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
    raise Unauthorized("missing API key: send metadata authorization: Bearer <api key>")


class GatewayServicer(pb_grpc.GatewayServicer):
    def __init__(self, service: CloudService) -> None:
        self._service = service

    async def _tenant(self, context: Context) -> Tenant:
        return await self._service.authenticate(_api_key(context.invocation_metadata()))

    @_unary
    async def SubmitJob(self, request: pb.SubmitJobRequest, context: Context) -> pb.Job:
        tenant = await self._tenant(context)
        spec = parse_spec(JobSpec, request.spec_json)
        return job_message(await self._service.submit_job(tenant, spec))

    @_unary
    async def GetJob(self, request: pb.GetJobRequest, context: Context) -> pb.Job:
        tenant = await self._tenant(context)
        return job_message(await self._service.get_job(tenant, request.job_id))

    @_unary
    async def ListJobs(self, request: pb.ListJobsRequest, context: Context) -> Any:
        tenant = await self._tenant(context)
        views = await self._service.list_jobs(tenant, limit=_limit(request.limit))
        return pb.ListJobsResponse(jobs=[job_message(v) for v in views])

    @_unary
    async def CancelJob(self, request: pb.CancelJobRequest, context: Context) -> pb.Job:
        tenant = await self._tenant(context)
        return job_message(await self._service.cancel_job(tenant, request.job_id))

    @_streaming
    async def StreamJobLogs(
        self, request: pb.StreamJobLogsRequest, context: Context
    ) -> AsyncIterator[pb.LogEvent]:
        tenant = await self._tenant(context)
        await self._service.get_job(tenant, request.job_id)  # NOT_FOUND before any line
        entries = self._service.job_logs(
            tenant, request.job_id, after=request.after, follow=request.follow
        )
        try:
            async for entry in entries:
                yield log_message(entry)
        finally:
            aclose = getattr(entries, "aclose", None)  # the port promises an iterator only
            if aclose is not None:
                await aclose()
        yield pb.LogEvent(end=job_message(await self._service.get_job(tenant, request.job_id)))

    @_unary
    async def CreateLease(self, request: pb.CreateLeaseRequest, context: Context) -> pb.Lease:
        tenant = await self._tenant(context)
        spec = parse_spec(LeaseSpec, request.spec_json)
        return lease_message(await self._service.create_lease(tenant, spec))

    @_unary
    async def GetLease(self, request: pb.GetLeaseRequest, context: Context) -> pb.Lease:
        tenant = await self._tenant(context)
        return lease_message(await self._service.get_lease(tenant, request.lease_id))

    @_unary
    async def ListLeases(self, request: pb.ListLeasesRequest, context: Context) -> Any:
        tenant = await self._tenant(context)
        views = await self._service.list_leases(tenant, limit=_limit(request.limit))
        return pb.ListLeasesResponse(leases=[lease_message(v) for v in views])

    @_unary
    async def ExtendLease(self, request: pb.ExtendLeaseRequest, context: Context) -> pb.Lease:
        tenant = await self._tenant(context)
        body = parse_spec(LeaseExtension, {"seconds": request.seconds}, "seconds")
        view = await self._service.extend_lease(tenant, request.lease_id, body.seconds)
        return lease_message(view)

    @_unary
    async def ReleaseLease(self, request: pb.ReleaseLeaseRequest, context: Context) -> pb.Lease:
        tenant = await self._tenant(context)
        return lease_message(await self._service.release_lease(tenant, request.lease_id))


async def serve_grpc(
    service: CloudService,
    host: str = "127.0.0.1",
    port: int = 50051,
    *,
    services: ServiceDesk | None = None,
    max_message_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> grpc.aio.Server:
    """Start serving the gateway's gRPC API on ``host:port`` (insecure: put TLS in front, as
    for REST), with the ``Services`` service when the gateway runs a desk (``services``); the
    caller stops it with ``await server.stop(grace)``."""
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared listener
        ]
    )
    pb_grpc.add_GatewayServicer_to_server(GatewayServicer(service), server)  # type: ignore[no-untyped-call]
    if services is not None:
        from byteleap.cloud.gateway.grpc_services import add_services  # it builds on this module

        add_services(server, service, services)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    server.add_insecure_port(address)
    await server.start()
    log.info("gRPC gateway listening on %s", address)
    return server
