"""The customer gRPC API (grpc.aio) over the `CloudService` port, next to the REST one.

The contract is ``proto/byteleap/gateway/v1/gateway.proto``; its Python code is generated into
``_pb/`` by the build (`protogen`). Every call is authenticated from the ``authorization:
Bearer <api key>`` metadata before its request is read (`KeyFirst`); each RPC then calls one
port method and converts the view; what it raises is mapped once, in `_abort`:

- `CloudError` → its ``grpc_code``, the message as details, trailing metadata ``reason`` (and
  ``field`` for `InvalidSpec`);
- a spec that fails its pydantic model → `InvalidSpec` (INVALID_ARGUMENT) naming the field;
- anything else → INTERNAL "internal error" (logged, never shown).

A log stream re-checks its key every ``key_recheck_s`` and ends UNAUTHENTICATED (reason
``key_revoked``) once it is revoked.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from byteleap.gateway.grpc_common import (
    Context,
    KeyFirst,
    api_key,
    call_tenant,
    limit,
    parse_spec,
    pb,
    pb_grpc,
    streaming,
    unary,
)
from byteleap.gateway.grpc_services import add_services
from byteleap.gateway.key_watch import until_revoked
from byteleap.gateway.port import CloudService, Tenant
from byteleap.gateway.rest_common import (
    DEFAULT_KEY_RECHECK_S,
    DEFAULT_MAX_BODY_BYTES,
    LeaseExtension,
)
from byteleap.protocol.api import (
    JobSpec,
    JobState,
    JobView,
    LeaseSpec,
    LeaseState,
    LeaseView,
    LogEntry,
)

if TYPE_CHECKING:
    from byteleap.gateway.service_desk import ServiceDesk

log = logging.getLogger(__name__)

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
        gpu_model=view.gpu_model or "",  # proto3 strings have no null: "" for a CPU lease
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


class GatewayServicer(pb_grpc.GatewayServicer):
    def __init__(self, service: CloudService, key_recheck_s: float = DEFAULT_KEY_RECHECK_S) -> None:
        self._service = service
        self._key_recheck_s = key_recheck_s

    async def _tenant(self, context: Context) -> Tenant:
        return await call_tenant(context, self._service.authenticate)

    @unary
    async def SubmitJob(self, request: pb.SubmitJobRequest, context: Context) -> pb.Job:
        tenant = await self._tenant(context)
        spec = parse_spec(JobSpec, request.spec_json)
        return job_message(await self._service.submit_job(tenant, spec))

    @unary
    async def GetJob(self, request: pb.GetJobRequest, context: Context) -> pb.Job:
        tenant = await self._tenant(context)
        return job_message(await self._service.get_job(tenant, request.job_id))

    @unary
    async def ListJobs(self, request: pb.ListJobsRequest, context: Context) -> Any:
        tenant = await self._tenant(context)
        views = await self._service.list_jobs(tenant, limit=limit(request.limit))
        return pb.ListJobsResponse(jobs=[job_message(v) for v in views])

    @unary
    async def CancelJob(self, request: pb.CancelJobRequest, context: Context) -> pb.Job:
        tenant = await self._tenant(context)
        return job_message(await self._service.cancel_job(tenant, request.job_id))

    @streaming
    async def StreamJobLogs(
        self, request: pb.StreamJobLogsRequest, context: Context
    ) -> AsyncIterator[pb.LogEvent]:
        key = api_key(context.invocation_metadata())
        tenant = await call_tenant(context, self._service.authenticate)
        await self._service.get_job(tenant, request.job_id)  # NOT_FOUND before any line
        lines = self._service.job_logs(
            tenant, request.job_id, after=request.after, follow=request.follow
        )
        entries = until_revoked(lines, self._service, key, self._key_recheck_s)
        try:
            async for entry in entries:
                yield log_message(entry)
        finally:
            await entries.aclose()
        yield pb.LogEvent(end=job_message(await self._service.get_job(tenant, request.job_id)))

    @unary
    async def CreateLease(self, request: pb.CreateLeaseRequest, context: Context) -> pb.Lease:
        tenant = await self._tenant(context)
        spec = parse_spec(LeaseSpec, request.spec_json)
        return lease_message(await self._service.create_lease(tenant, spec))

    @unary
    async def GetLease(self, request: pb.GetLeaseRequest, context: Context) -> pb.Lease:
        tenant = await self._tenant(context)
        return lease_message(await self._service.get_lease(tenant, request.lease_id))

    @unary
    async def ListLeases(self, request: pb.ListLeasesRequest, context: Context) -> Any:
        tenant = await self._tenant(context)
        views = await self._service.list_leases(tenant, limit=limit(request.limit))
        return pb.ListLeasesResponse(leases=[lease_message(v) for v in views])

    @unary
    async def ExtendLease(self, request: pb.ExtendLeaseRequest, context: Context) -> pb.Lease:
        tenant = await self._tenant(context)
        body = parse_spec(LeaseExtension, {"seconds": request.seconds}, "seconds")
        view = await self._service.extend_lease(tenant, request.lease_id, body.seconds)
        return lease_message(view)

    @unary
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
    key_recheck_s: float = DEFAULT_KEY_RECHECK_S,
    credentials: grpc.ServerCredentials | None = None,
) -> grpc.aio.Server:
    """Start serving the gateway's gRPC API on ``host:port`` (TLS with ``credentials``, else
    plain text), with the ``Services`` service when the gateway runs a desk (``services``);
    the caller stops it with ``await server.stop(grace)``."""
    server = grpc.aio.server(
        interceptors=[KeyFirst(service.authenticate)],
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared listener
        ],
    )
    servicer = GatewayServicer(service, key_recheck_s)
    pb_grpc.add_GatewayServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    if services is not None:
        add_services(server, service, services)
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if credentials is not None:
        server.add_secure_port(address, credentials)
    else:
        server.add_insecure_port(address)
    await server.start()
    log.info("gRPC gateway listening on %s", address)
    return server
