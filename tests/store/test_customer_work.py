"""`store.customer_work`: which of a worker's customer work overlaps a span of time (leases,
jobs from placement to end, service replicas), on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from byteleap.protocol.api import JobState, LeaseState
from byteleap.protocol.service_spec import ReplicaState, ServiceState
from byteleap.store import Store
from byteleap.store.cloud import JobRecord, create_tenant, insert_job
from byteleap.store.customer_work import customer_work_on
from byteleap.store.leases import LeaseRecord, insert_lease
from byteleap.store.services import ReplicaRecord, ServiceRecord, insert_replica, insert_service

T = 1_000_000.0
MINER = "5Miner"


async def _seed(store: Store) -> None:
    async with store.session() as s:
        tenant = await create_tenant(s, "acme", balance=1.0, at=int(T))
        await insert_lease(
            s,
            LeaseRecord(
                id="lease-a", tenant_id=tenant.id, state=LeaseState.RELEASED, spec_json="{}",
                worker_id="w-lease", miner_hotkey=MINER, gpu_model="cpu", gpu_count=0,
                price_per_s=0.0, unit_price_micro=0, created_at=T, ends_at=T + 100,
                ended_at=T + 50, billed_until=T + 50, cost=0.0, receipts=0,
            ),
        )  # fmt: skip
        for job_id, state, finished in (
            ("job-queued", JobState.QUEUED, None),
            ("job-running", JobState.RUNNING, None),
            ("job-done", JobState.SUCCEEDED, T + 20),
        ):
            await insert_job(
                s,
                JobRecord(
                    id=job_id, tenant_id=tenant.id, state=state, spec_json="{}",
                    idempotency_key=None, attempts=1, worker_id=f"w-{job_id}",
                    miner_hotkey=MINER, created_at=T, started_at=T + 1, finished_at=finished,
                    exit_code=None, stdout_tail="", stderr_tail="", error=None, cost=0.0,
                ),
            )  # fmt: skip
        await insert_service(
            s,
            ServiceRecord(
                id="svc", tenant_id=tenant.id, name="svc", state=ServiceState.ACTIVE,
                spec_json="{}", revision=1, desired=1, created_at=T, updated_at=T,
            ),
        )  # fmt: skip
        await insert_replica(
            s,
            ReplicaRecord(
                id="rep-1", service_id="svc", revision=1, state=ReplicaState.RUNNING,
                worker_id="w-replica", miner_hotkey=MINER, endpoint=None, gpu_model="cpu",
                gpu_count=0, price_per_s=0.0, unit_price_micro=0, created_at=T + 10,
                ended_at=None, billed_until=T + 10, cost=0.0, receipts=0, error=None,
            ),
        )  # fmt: skip


@pytest.mark.parametrize(
    ("worker", "since", "until", "expected"),
    [
        ("w-lease", T + 40, T + 60, "lease lease-a"),  # ended inside the span
        ("w-lease", T + 51, T + 60, None),  # ended before it
        ("w-lease", T - 20, T - 1, None),  # began after it
        ("w-job-running", T + 500, T + 600, "job job-running"),  # still running
        ("w-job-done", T + 10, T + 30, "job job-done"),
        ("w-job-done", T + 21, T + 30, None),
        ("w-job-queued", T, T + 600, None),  # queued: on no worker yet
        ("w-replica", T + 100, T + 200, "replica rep-1"),
        ("w-replica", T, T + 9, None),
        ("w-nobody", T, T + 600, None),
    ],
)
async def test_customer_work_overlapping_a_span(
    store: Store, worker: str, since: float, until: float, expected: str | None
) -> None:
    await _seed(store)
    async with store.session() as s:
        found = await customer_work_on(
            s, miner_hotkey=MINER, worker_id=worker, since=since, until=until
        )
        other_miner = await customer_work_on(
            s, miner_hotkey="5Other", worker_id=worker, since=since, until=until
        )
    assert found == expected
    assert other_miner is None  # another miner's worker of the same name is not this one
