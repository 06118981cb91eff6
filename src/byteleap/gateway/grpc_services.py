"""The gRPC ``Services`` service: inference services over the same `ServiceDesk` as REST
``/v1/services``, with the authentication and error mapping of the jobs and leases RPCs
(`grpc_common`). Sending a service requests stays REST only (see the .proto).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from byteleap.gateway.grpc_common import Context, call_tenant, limit, parse_spec, pb, pb_grpc, unary
from byteleap.gateway.port import CloudService, Tenant
from byteleap.protocol.service_spec import (
    ServiceScale,
    ServiceSpec,
    ServiceState,
    ServiceUpdate,
    ServiceView,
)

if TYPE_CHECKING:
    from byteleap.gateway.service_desk import ServiceDesk

SERVICE_STATES: dict[ServiceState, pb.ServiceState] = {
    s: pb.ServiceState.Value(f"SERVICE_STATE_{s.name}") for s in ServiceState
}
_SCALE_FIELDS = ("min_replicas", "max_replicas", "target_in_flight", "target_latency_ms")


def service_message(view: ServiceView) -> pb.Service:
    return pb.Service(
        id=view.id,
        name=view.name,
        state=SERVICE_STATES[view.state],
        revision=view.revision,
        desired_replicas=view.desired_replicas,
        ready_replicas=view.ready_replicas,
        created_at=view.created_at,
        updated_at=view.updated_at,
        replica_seconds=view.replica_seconds,
        cost=view.cost,
        json=view.model_dump_json(),
    )


class ServicesServicer(pb_grpc.ServicesServicer):
    """``service`` authenticates (the tenants are the gateway's); ``desk`` runs the services."""

    def __init__(self, service: CloudService, desk: ServiceDesk) -> None:
        self._service = service
        self._desk = desk

    async def _tenant(self, context: Context) -> Tenant:
        return await call_tenant(context, self._service.authenticate)

    @unary
    async def CreateService(self, request: pb.CreateServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        spec = parse_spec(ServiceSpec, request.spec_json)
        return service_message(await self._desk.create(tenant, spec))

    @unary
    async def GetService(self, request: pb.GetServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        return service_message(await self._desk.get(tenant, request.service_id))

    @unary
    async def ListServices(self, request: pb.ListServicesRequest, context: Context) -> Any:
        tenant = await self._tenant(context)
        views = await self._desk.list_for(tenant, limit=limit(request.limit))
        return pb.ListServicesResponse(services=[service_message(v) for v in views])

    @unary
    async def ScaleService(self, request: pb.ScaleServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        given = {name: getattr(request, name) for name in _SCALE_FIELDS if request.HasField(name)}
        change = parse_spec(ServiceScale, given, "scale")
        return service_message(await self._desk.scale(tenant, request.service_id, change))

    @unary
    async def UpdateService(self, request: pb.UpdateServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        change = parse_spec(ServiceUpdate, request.update_json, "update_json")
        return service_message(await self._desk.update(tenant, request.service_id, change))

    @unary
    async def DeleteService(self, request: pb.DeleteServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        return service_message(await self._desk.delete(tenant, request.service_id))


def add_services(server: grpc.aio.Server, service: CloudService, desk: ServiceDesk) -> None:
    pb_grpc.add_ServicesServicer_to_server(ServicesServicer(service, desk), server)  # type: ignore[no-untyped-call]
