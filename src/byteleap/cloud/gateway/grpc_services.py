"""The gRPC ``Services`` service: inference services over the same `ServiceDesk` as REST
``/v1/services``, with the authentication and error mapping of the jobs and leases RPCs
(`grpc_api`). Sending a service requests stays REST only (see the .proto).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from byteleap.cloud.gateway._pb import gateway_pb2 as pb
from byteleap.cloud.gateway._pb import gateway_pb2_grpc as pb_grpc
from byteleap.cloud.gateway.grpc_api import Context, _api_key, _limit, _unary, parse_spec
from byteleap.cloud.gateway.port import CloudService, Tenant
from byteleap.cloud.services.spec import (
    ServiceScale,
    ServiceSpec,
    ServiceState,
    ServiceUpdate,
    ServiceView,
)

if TYPE_CHECKING:
    from byteleap.cloud.gateway.services import ServiceDesk

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
        return await self._service.authenticate(_api_key(context.invocation_metadata()))

    @_unary
    async def CreateService(self, request: pb.CreateServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        spec = parse_spec(ServiceSpec, request.spec_json)
        return service_message(await self._desk.create(tenant, spec))

    @_unary
    async def GetService(self, request: pb.GetServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        return service_message(await self._desk.get(tenant, request.service_id))

    @_unary
    async def ListServices(self, request: pb.ListServicesRequest, context: Context) -> Any:
        tenant = await self._tenant(context)
        views = await self._desk.list_for(tenant, limit=_limit(request.limit))
        return pb.ListServicesResponse(services=[service_message(v) for v in views])

    @_unary
    async def ScaleService(self, request: pb.ScaleServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        given = {name: getattr(request, name) for name in _SCALE_FIELDS if request.HasField(name)}
        change = parse_spec(ServiceScale, given, "scale")
        return service_message(await self._desk.scale(tenant, request.service_id, change))

    @_unary
    async def UpdateService(self, request: pb.UpdateServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        change = parse_spec(ServiceUpdate, request.update_json, "update_json")
        return service_message(await self._desk.update(tenant, request.service_id, change))

    @_unary
    async def DeleteService(self, request: pb.DeleteServiceRequest, context: Context) -> pb.Service:
        tenant = await self._tenant(context)
        return service_message(await self._desk.delete(tenant, request.service_id))


def add_services(server: grpc.aio.Server, service: CloudService, desk: ServiceDesk) -> None:
    pb_grpc.add_ServicesServicer_to_server(ServicesServicer(service, desk), server)  # type: ignore[no-untyped-call]
