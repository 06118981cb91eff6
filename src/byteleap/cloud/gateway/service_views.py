"""How services and replicas look to their tenant, and what a replica asks of a worker."""

from __future__ import annotations

from typing import TYPE_CHECKING

from byteleap.cloud.services.spec import ReplicaView, ServiceSpec, ServiceView
from byteleap.store.services import ReplicaRecord, ServiceRecord

if TYPE_CHECKING:
    from byteleap.cloud.gateway.services import LiveReplica


def replica_view(record: ReplicaRecord, live: LiveReplica | None) -> ReplicaView:
    return ReplicaView(
        id=record.id,
        revision=record.revision,
        state=record.state,
        health=live.health.phase.value if live is not None else record.state.value,
        worker_id=record.worker_id,
        miner_hotkey=record.miner_hotkey,
        endpoint=record.endpoint or (live.endpoint if live is not None else None),
        in_flight=live.outstanding if live is not None else 0,
        price_per_s=record.price_per_s,
        created_at=record.created_at,
        ended_at=record.ended_at,
        billed_until=record.billed_until,
        cost=record.cost,
        receipts=record.receipts,
        error=record.error,
    )


def service_view(service: ServiceRecord, replicas: list[ReplicaView]) -> ServiceView:
    return ServiceView(
        id=service.id,
        name=service.name,
        state=service.state,
        spec=ServiceSpec.model_validate_json(service.spec_json),
        revision=service.revision,
        desired_replicas=service.desired,
        ready_replicas=sum(r.health == "ready" for r in replicas),
        replicas=replicas,
        created_at=service.created_at,
        updated_at=service.updated_at,
        cost=sum(r.cost for r in replicas),
        replica_seconds=sum(r.billed_until - r.created_at for r in replicas),
    )
