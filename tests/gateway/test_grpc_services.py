"""The gRPC ``Services`` service over a real `ServiceDesk` and store, served on 127.0.0.1 and
called through a grpc.aio channel: the lifecycle (create, get, list, scale, update, delete),
tenant isolation, spec validation naming the field, the quota, and the error mapping — the
same answers as REST ``/v1/services``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from byteleap.config import GatewaySettings, ServiceSettings
from byteleap.gateway._pb import gateway_pb2 as pb
from byteleap.gateway._pb import gateway_pb2_grpc as pb_grpc
from byteleap.gateway.grpc_api import serve_grpc
from byteleap.gateway.grpc_services import SERVICE_STATES
from byteleap.protocol.service_spec import ServiceState, ServiceView
from gateway.services_desk import Desk, open_desk

TIMEOUT_S = 5.0
SPEC = {"name": "echo", "command": ["python", "serve.py"], "autoscale": {"max_replicas": 2}}


@dataclass
class Served:
    desk: Desk
    gateway: pb_grpc.GatewayStub
    services: pb_grpc.ServicesStub

    def auth(self, tenant: str) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.desk.keys[tenant]}"),)

    async def create(self, spec: dict[str, Any] = SPEC, tenant: str = "alice") -> pb.Service:
        request = pb.CreateServiceRequest(spec_json=json.dumps(spec))
        created: pb.Service = await self.services.CreateService(
            request, metadata=self.auth(tenant), timeout=TIMEOUT_S
        )
        return created


@pytest.fixture
async def served(sqlite_url: str, free_port: Any) -> AsyncIterator[Served]:
    settings = GatewaySettings(services=ServiceSettings(max_replicas_per_tenant=4))
    desk = await open_desk(sqlite_url, settings=settings)
    port = free_port()
    server = await serve_grpc(desk.tenants, "127.0.0.1", port, services=desk.desk)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Served(desk, pb_grpc.GatewayStub(channel), pb_grpc.ServicesStub(channel))
    finally:
        await channel.close()
        await server.stop(None)
        await desk.close()


async def _error(call: Any) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await call
    return caught.value


def _trailers(error: grpc.aio.AioRpcError) -> dict[str, Any]:
    return dict(error.trailing_metadata() or ())


def test_every_service_state_has_a_wire_value() -> None:
    assert set(SERVICE_STATES) == set(ServiceState)
    assert pb.SERVICE_STATE_UNSPECIFIED not in SERVICE_STATES.values()


async def test_create_get_list_scale_update_delete(served: Served) -> None:
    stub, alice = served.services, served.auth("alice")
    created = await served.create()
    assert created.state == pb.SERVICE_STATE_ACTIVE
    assert (created.name, created.revision, created.desired_replicas) == ("echo", 1, 1)
    assert created.ready_replicas == 0 and created.cost == 0.0
    view = ServiceView.model_validate_json(created.json)
    assert (view.id, view.spec.autoscale.max_replicas) == (created.id, 2)
    # The same view as the desk's own (what REST answers).
    tenant = await served.desk.tenants.authenticate(served.desk.keys["alice"])
    assert view == await served.desk.desk.get(tenant, created.id)

    got = await stub.GetService(pb.GetServiceRequest(service_id=created.id), metadata=alice)
    assert got == created
    listed = await stub.ListServices(pb.ListServicesRequest(), metadata=alice)
    assert [s.id for s in listed.services] == [created.id]

    scaled = await stub.ScaleService(
        pb.ScaleServiceRequest(service_id=created.id, min_replicas=2, target_in_flight=8.0),
        metadata=alice,
    )
    autoscale = ServiceView.model_validate_json(scaled.json).spec.autoscale
    assert (autoscale.min_replicas, autoscale.max_replicas) == (2, 2)
    assert autoscale.target_in_flight == 8.0
    assert scaled.desired_replicas == 2 and scaled.revision == 1  # scaling is no new revision

    update = json.dumps({"env": {"VERSION": "2"}, "rollout": {"max_surge": 2}})
    updated = await stub.UpdateService(
        pb.UpdateServiceRequest(service_id=created.id, update_json=update), metadata=alice
    )
    spec = ServiceView.model_validate_json(updated.json).spec
    assert updated.revision == 2
    assert (spec.env, spec.rollout.max_surge, spec.autoscale.min_replicas) == (
        {"VERSION": "2"},
        2,
        2,
    )

    deleted = await stub.DeleteService(
        pb.DeleteServiceRequest(service_id=created.id), metadata=alice
    )
    assert deleted.state == pb.SERVICE_STATE_DELETING and deleted.desired_replicas == 0
    again = await _error(
        stub.ScaleService(pb.ScaleServiceRequest(service_id=created.id), metadata=alice)
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _trailers(again)["reason"] == "conflict"


async def test_another_tenants_service_is_not_found_and_not_listed(served: Served) -> None:
    stub, bob = served.services, served.auth("bob")
    created = await served.create()
    calls = [
        stub.GetService(pb.GetServiceRequest(service_id=created.id), metadata=bob),
        stub.ScaleService(
            pb.ScaleServiceRequest(service_id=created.id, max_replicas=1), metadata=bob
        ),
        stub.UpdateService(
            pb.UpdateServiceRequest(service_id=created.id, update_json="{}"), metadata=bob
        ),
        stub.DeleteService(pb.DeleteServiceRequest(service_id=created.id), metadata=bob),
    ]
    for call in calls:
        error = await _error(call)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert _trailers(error)["reason"] == "not_found"
    assert list((await stub.ListServices(pb.ListServicesRequest(), metadata=bob)).services) == []
    alice = served.auth("alice")
    still = await stub.GetService(pb.GetServiceRequest(service_id=created.id), metadata=alice)
    assert still.state == pb.SERVICE_STATE_ACTIVE and still.desired_replicas == 1


@pytest.mark.parametrize(
    ("spec_json", "field"),
    [
        ("not json", "spec_json"),
        (json.dumps({**SPEC, "name": "Not_A_Name"}), "name"),
        (json.dumps({**SPEC, "env": {"PORT": "80"}}), "env"),
        (json.dumps({**SPEC, "autoscale": {"min_replicas": 3, "max_replicas": 2}}), "autoscale"),
        (json.dumps({**SPEC, "unknown": 1}), "unknown"),
    ],
)
async def test_a_bad_spec_is_invalid_argument_naming_the_field(
    served: Served, spec_json: str, field: str
) -> None:
    request = pb.CreateServiceRequest(spec_json=spec_json)
    error = await _error(served.services.CreateService(request, metadata=served.auth("alice")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailers(error) == {"reason": "invalid_spec", "field": field}
    listed = await served.services.ListServices(
        pb.ListServicesRequest(), metadata=served.auth("alice")
    )
    assert list(listed.services) == []  # nothing created


async def test_bad_changes_are_invalid_argument_and_change_nothing(served: Served) -> None:
    stub, alice = served.services, served.auth("alice")
    created = await served.create()
    bad = [
        (pb.ScaleServiceRequest(service_id=created.id, min_replicas=0), "min_replicas"),
        (pb.ScaleServiceRequest(service_id=created.id, target_in_flight=-1), "target_in_flight"),
        # Valid alone, but past the current max_replicas (2): the whole spec is checked.
        (pb.ScaleServiceRequest(service_id=created.id, min_replicas=3), "autoscale"),
    ]
    for request, field in bad:
        error = await _error(stub.ScaleService(request, metadata=alice))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert _trailers(error)["field"] == field
    for update_json, field in [
        ("[1]", "update_json"),
        (json.dumps({"env": {"PORT": "1"}}), "env"),
        (json.dumps({"command": []}), "command"),
    ]:
        request = pb.UpdateServiceRequest(service_id=created.id, update_json=update_json)
        error = await _error(stub.UpdateService(request, metadata=alice))
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, update_json
        assert _trailers(error)["field"] == field
    got = await stub.GetService(pb.GetServiceRequest(service_id=created.id), metadata=alice)
    assert got == created


async def test_the_replica_quota_is_resource_exhausted(served: Served) -> None:
    await served.create({**SPEC, "autoscale": {"max_replicas": 3}})
    error = await _error(served.create({**SPEC, "name": "two"}))  # 3 + 2 > 4
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert _trailers(error)["reason"] == "quota_exceeded"
    assert (await served.create({**SPEC, "name": "one", "autoscale": {}})).name == "one"


async def test_no_or_a_wrong_key_is_unauthenticated(served: Served) -> None:
    stub = served.services
    for metadata in [(), (("authorization", "Bearer nope"),), (("authorization", "Basic x"),)]:
        error = await _error(stub.ListServices(pb.ListServicesRequest(), metadata=metadata))
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        assert _trailers(error)["reason"] == "unauthorized"
    limit = await _error(
        stub.ListServices(pb.ListServicesRequest(limit=1001), metadata=served.auth("alice"))
    )
    assert (limit.code(), _trailers(limit)["field"]) == (grpc.StatusCode.INVALID_ARGUMENT, "limit")


async def test_without_a_desk_the_services_service_is_unimplemented(
    served: Served, free_port: Any
) -> None:
    port = free_port()
    server = await serve_grpc(served.desk.tenants, "127.0.0.1", port)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = pb_grpc.ServicesStub(channel)
            error = await _error(
                stub.ListServices(pb.ListServicesRequest(), metadata=served.auth("alice"))
            )
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
            jobs = await pb_grpc.GatewayStub(channel).ListJobs(
                pb.ListJobsRequest(), metadata=served.auth("alice")
            )
            assert list(jobs.jobs) == []
    finally:
        await server.stop(None)
