"""Job artifacts in the store, on SQLite and PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

import pytest

from byteleap.protocol.api import JobState
from byteleap.store import JobRecord, RecordNotFound, Store, create_tenant, insert_job
from byteleap.store.artifact_records import (
    ArtifactRecord,
    get_artifact,
    list_artifacts,
    record_artifacts,
)

SHA = "ab" * 32


async def _job(store: Store, job_id: str = "job_0001") -> str:
    async with store.session() as s:
        tenant = await create_tenant(s, f"t-{job_id}", balance=1.0, at=0)
        await insert_job(
            s,
            JobRecord(
                id=job_id, tenant_id=tenant.id, state=JobState.QUEUED, spec_json="{}",
                idempotency_key=None, attempts=0, worker_id=None, miner_hotkey=None,
                created_at=0.0, started_at=None, finished_at=None, exit_code=None,
                stdout_tail="", stderr_tail="", error=None, cost=0.0,
            ),
        )  # fmt: skip
    return job_id


async def test_stored_and_rejected_are_listed_and_only_stored_ones_open(store: Store) -> None:
    job_id = await _job(store)
    async with store.session() as s:
        await record_artifacts(
            s,
            [
                ArtifactRecord(job_id, "b/out.bin", 10, SHA, None, 1.0),
                ArtifactRecord(job_id, "a.txt", 3, SHA, None, 1.0),
                ArtifactRecord(job_id, "big", 99, "", "over the limit", 1.0),
            ],
        )
    async with store.session() as s:
        listed = await list_artifacts(s, job_id)
        assert [(r.path, r.stored) for r in listed] == [
            ("a.txt", True), ("b/out.bin", True), ("big", False)
        ]  # fmt: skip
        assert (await get_artifact(s, job_id, "b/out.bin")).size == 10
        with pytest.raises(RecordNotFound):
            await get_artifact(s, job_id, "big")
        with pytest.raises(RecordNotFound):
            await get_artifact(s, "job_other", "a.txt")


async def test_recording_again_replaces_instead_of_conflicting(store: Store) -> None:
    """A gateway that restarted mid-collection records the job's artifacts a second time."""
    job_id = await _job(store)
    async with store.session() as s:
        await record_artifacts(s, [ArtifactRecord(job_id, "x", 1, "", "not received", 1.0)])
    async with store.session() as s:
        await record_artifacts(s, [ArtifactRecord(job_id, "x", 1, SHA, None, 2.0)])
        await record_artifacts(s, [])
    async with store.session() as s:
        (record,) = await list_artifacts(s, job_id)
    assert record.stored and record.sha256 == SHA and record.recorded_at == 2.0
