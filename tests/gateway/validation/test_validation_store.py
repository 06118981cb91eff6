"""Validations and lease health in the store, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from byteleap.protocol.api import JobState, LeaseState
from byteleap.store import IllegalTransition, Store
from byteleap.store.cloud import JobRecord, create_tenant, insert_job
from byteleap.store.leases import LeaseRecord, insert_lease
from byteleap.store.validations import (
    MATCH,
    MISMATCH,
    NO_RESULT,
    PENDING,
    DigestParts,
    add_run,
    decide_validation,
    finish_run,
    get_validation,
    lease_health,
    list_runs,
    list_validations,
    penalised_miners,
    probe_failures,
    record_probe_failure,
    record_probe_ok,
    start_validation,
    validation_states,
)

GOOD = DigestParts("a" * 64, 0, "b" * 64, [("out.bin", 3, "c" * 64)])
BAD = DigestParts("d" * 64, 0, "e" * 64, [])


async def _job(store: Store, job_id: str = "job_" + "0" * 24) -> JobRecord:
    async with store.session() as s:
        tenant = await create_tenant(s, f"t-{job_id}", balance=1.0, at=0)
        record = JobRecord(
            id=job_id, tenant_id=tenant.id, state=JobState.SUCCEEDED, spec_json="{}",
            idempotency_key=None, attempts=1, worker_id="w-1", miner_hotkey="A",
            created_at=1.0, started_at=2.0, finished_at=3.0, exit_code=0, stdout_tail="",
            stderr_tail="", error=None, cost=0.5,
        )  # fmt: skip
        job, _ = await insert_job(s, record)
    return job


async def _open(store: Store, job: JobRecord) -> bool:
    async with store.session() as s:
        return await start_validation(
            s, job_id=job.id, tenant_id=job.tenant_id, requested=True, miner_hotkey="A",
            worker_id="w-1", first=BAD, at=10.0,
        )  # fmt: skip


async def test_a_validation_keeps_every_runs_digest_and_its_verdict(store: Store) -> None:
    job = await _job(store)
    assert await _open(store, job)
    assert not await _open(store, job)  # once per job
    async with store.session() as s:
        await add_run(s, job.id, 1, miner_hotkey="B", worker_id="w-2", at=11.0)
        await finish_run(s, job.id, 1, parts=GOOD, at=12.0)
        await add_run(s, job.id, 2, miner_hotkey="C", worker_id="w-3", at=13.0)
        await finish_run(s, job.id, 2, parts=GOOD, at=14.0)
        with pytest.raises(IllegalTransition):
            await finish_run(s, job.id, 2, parts=GOOD, at=15.0)
    async with store.session() as s:
        assert await validation_states(s, [job.id, "job_other"]) == {job.id: PENDING}
        verdict = await decide_validation(
            s, job.id, MISMATCH, at=100.0, majority=GOOD.digest, faulty=["A"], refunded=0.5
        )
    assert verdict.state == MISMATCH and verdict.refunded == 0.5
    async with store.session() as s:
        runs = await list_runs(s, job.id)
        with pytest.raises(IllegalTransition):
            await decide_validation(s, job.id, MATCH, at=101.0)
    assert [r.digest for r in runs] == [BAD.digest, GOOD.digest, GOOD.digest]
    assert runs[1].artifacts == [["out.bin", 3, "c" * 64]] and runs[1].miner_job_id.endswith("-v1")
    assert [r.faulty for r in runs] == [True, False, False]
    async with store.session() as s:
        assert await penalised_miners(s, since=50.0, until=150.0) == {"A"}
        assert await penalised_miners(s, since=101.0, until=150.0) == set()  # window over
        assert (await get_validation(s, job.id)).decided_at == 100.0
        assert await list_validations(s, states=[PENDING]) == []


async def test_a_run_without_a_result_and_bad_verdicts(store: Store) -> None:
    job = await _job(store)
    await _open(store, job)
    async with store.session() as s:
        with pytest.raises(ValueError):
            await add_run(s, job.id, 0, miner_hotkey="B", worker_id="w-2", at=11.0)
        await add_run(s, job.id, 1, miner_hotkey="B", worker_id="w-2", at=11.0)
        await finish_run(s, job.id, 1, parts=None, at=12.0, error="timed_out")
        with pytest.raises(ValueError):
            await decide_validation(s, job.id, PENDING, at=13.0)
    async with store.session() as s:
        run = (await list_runs(s, job.id))[1]
    assert run.state == NO_RESULT and run.digest is None and run.error == "timed_out"


async def _lease(store: Store) -> LeaseRecord:
    async with store.session() as s:
        tenant = await create_tenant(s, "renter", balance=1.0, at=0)
        return await insert_lease(
            s,
            LeaseRecord(
                id="lease_" + "1" * 24, tenant_id=tenant.id, state=LeaseState.ACTIVE,
                spec_json="{}", worker_id="w-1", miner_hotkey="A", gpu_model="cpu", gpu_count=1,
                price_per_s=0.001, unit_price_micro=1000, created_at=100.0, ends_at=200.0,
                ended_at=None, billed_until=100.0, cost=0.0, receipts=0,
            ),
        )  # fmt: skip


async def test_health_moves_forward_until_the_first_failure_then_freezes(store: Store) -> None:
    lease = await _lease(store)
    async with store.session() as s:
        await record_probe_ok(s, lease.id, at=110.0)
        await record_probe_ok(s, lease.id, at=105.0)  # an older answer never moves it back
        assert (await lease_health(s, [lease.id]))[lease.id].last_ok_at == 110.0
        first = await record_probe_failure(
            s, lease.id, at=120.0, target="workload", reason="timeout", detail="slow",
            last_ok_at=lease.created_at,
        )  # fmt: skip
        await record_probe_failure(
            s, lease.id, at=130.0, target="access", reason="closed", detail="",
            last_ok_at=lease.created_at,
        )  # fmt: skip
        await record_probe_ok(s, lease.id, at=140.0)  # degraded is final
        health = (await lease_health(s, [lease.id]))[lease.id]
        failures = await probe_failures(s, lease.id)
    assert first.degraded and first.degraded_at == 120.0
    assert health.last_ok_at == 110.0 and health.reason == "timeout"
    assert [(f.at, f.reason) for f in failures] == [(120.0, "timeout"), (130.0, "closed")]


async def test_a_failure_before_any_good_probe_keeps_billing_at_the_start(store: Store) -> None:
    lease = await _lease(store)
    async with store.session() as s:
        health = await record_probe_failure(
            s, lease.id, at=101.0, target="workload", reason="closed", detail="gone",
            last_ok_at=lease.created_at,
        )  # fmt: skip
    assert health.last_ok_at == 100.0 and health.degraded
