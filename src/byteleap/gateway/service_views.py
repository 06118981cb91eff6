"""How services and replicas look to their tenant, and what a replica asks of a worker."""

from __future__ import annotations

from byteleap.gateway.service_live import LiveReplica
from byteleap.gateway.serving import health as hs
from byteleap.protocol.billing import round_money
from byteleap.protocol.service_spec import (
    ReplicaState,
    ReplicaView,
    ServiceSpec,
    ServiceState,
    ServiceView,
)
from byteleap.store.quotas import TenantQuota
from byteleap.store.services import ReplicaRecord, ServiceRecord


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


def service_view(
    service: ServiceRecord,
    replicas: list[ReplicaView],
    *,
    currency: str,
    max_unready: int,
    quota: TenantQuota | None = None,
) -> ServiceView:
    """``replicas``: all of the service's, oldest first; ``quota``: its tenant's now."""
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
        cost=round_money(sum(r.cost for r in replicas)),  # receipts count micro-units
        currency=currency,
        replica_seconds=sum(r.billed_until - r.created_at for r in replicas),
        problem=problem_of(service, replicas, max_unready) or _over_quota(service, replicas, quota),
    )


def problem_of(service: ServiceRecord, replicas: list[ReplicaView], max_unready: int) -> str | None:
    """Why the service does not serve its revision: the rule the loop stops starting by."""
    if service.state is not ServiceState.ACTIVE:
        return None
    mine = [r for r in replicas if r.revision == service.revision]
    failures = [r.error for r in reversed(mine) if r.state is ReplicaState.FAILED]
    ready = any(r.health == hs.Phase.READY.value for r in mine)
    return hs.stall_reason(service.revision, failures, ready, max_unready)


def _over_quota(
    service: ServiceRecord, replicas: list[ReplicaView], quota: TenantQuota | None
) -> str | None:
    """Why the service stays below its target when its tenant's ``max_workers`` is what the
    loop stops starting replicas by."""
    if service.state is not ServiceState.ACTIVE or quota is None or quota.workers_free > 0:
        return None
    serving = sum(r.state in (ReplicaState.STARTING, ReplicaState.RUNNING) for r in replicas)
    if serving >= service.desired:
        return None
    return (
        f"{serving} of {service.desired} replicas run: no more start while the tenant holds "
        f"its quota ({quota.workers_message()})"
    )
