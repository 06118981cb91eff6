"""The services store on both backends: ownership, final states, forward-only billing."""

from __future__ import annotations

import pytest

from byteleap.protocol.service_spec import ReplicaState, ServiceState
from byteleap.store import IllegalTransition, RecordNotFound, Store
from byteleap.store.cloud import create_tenant
from byteleap.store.services import (
    ReplicaRecord,
    ServiceRecord,
    advance_replica,
    get_service,
    insert_replica,
    insert_service,
    list_replicas,
    record_replica_billing,
    update_service,
)


def _service(tenant_id: int) -> ServiceRecord:
    return ServiceRecord(
        id="svc_1", tenant_id=tenant_id, name="web", state=ServiceState.ACTIVE, spec_json="{}",
        revision=1, desired=2, created_at=1.0, updated_at=1.0,
    )  # fmt: skip


def _replica(replica_id: str, at: float) -> ReplicaRecord:
    return ReplicaRecord(
        id=replica_id, service_id="svc_1", revision=1, state=ReplicaState.STARTING,
        worker_id="w-0000000000000001", miner_hotkey="5Fminer", endpoint=None, gpu_model="cpu",
        gpu_count=1, price_per_s=0.5, unit_price_micro=500_000, created_at=at, ended_at=None,
        billed_until=at, cost=0.0, receipts=0, error=None,
    )  # fmt: skip


async def test_services_and_replicas_round_trip(store: Store) -> None:
    async with store.session() as s:
        tenant = await create_tenant(s, "t", balance=1.0, at=0)
        other = await create_tenant(s, "u", balance=1.0, at=0)
        await insert_service(s, _service(tenant.id))
        await insert_replica(s, _replica("rep_b", 20.0))
        await insert_replica(s, _replica("rep_a", 10.0))
    async with store.session() as s:
        with pytest.raises(RecordNotFound):
            await get_service(s, "svc_1", tenant_id=other.id)
        assert [r.id for r in await list_replicas(s, service_id="svc_1")] == ["rep_a", "rep_b"]
        running = await advance_replica(s, "rep_a", ReplicaState.RUNNING, endpoint="127.0.0.1:9")
        assert running.endpoint == "127.0.0.1:9"
        billed = await record_replica_billing(s, "rep_a", billed_until=15.0, cost_delta=2.5)
        assert (billed.cost, billed.receipts) == (2.5, 1)
        with pytest.raises(ValueError, match="backwards"):
            await record_replica_billing(s, "rep_a", billed_until=12.0, cost_delta=1.0)
        ended = await advance_replica(s, "rep_a", ReplicaState.STOPPED, ended_at=16.0)
        with pytest.raises(ValueError, match="past its end"):
            await record_replica_billing(s, "rep_a", billed_until=17.0, cost_delta=1.0)
        assert ended.state is ReplicaState.STOPPED
    async with store.session() as s:
        with pytest.raises(IllegalTransition):
            await advance_replica(s, "rep_a", ReplicaState.RUNNING)
    async with store.session() as s:
        await update_service(s, "svc_1", state=ServiceState.DELETED)
    async with store.session() as s:
        with pytest.raises(IllegalTransition):
            await update_service(s, "svc_1", desired=3)
