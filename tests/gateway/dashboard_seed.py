"""A small network written into a store, with the numbers the network view must report.

Three miners: ALPHA (two GPU workers, honest, one timeout), BETA (one CPU worker, one
error, one challenge in flight), GAMMA (one GPU worker caught with wrong answers, offline
now). Plus challenges outside the scoring window, weight sets, jobs and leases of a tenant.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass

from byteleap.protocol.api import JobState, LeaseState
from byteleap.store import (
    BUCKET_SECONDS,
    ChallengeRecord,
    ChallengeStatus,
    GpuRecord,
    JobRecord,
    LeaseRecord,
    Store,
    WorkerHardware,
    WorkerState,
    bucket_of,
    bulk_insert_challenges,
    create_tenant,
    insert_job,
    insert_lease,
    mark_online,
    record_weights,
    set_worker_hardware,
    set_worker_states,
    upsert_miner,
    upsert_workers,
)

ALPHA = "5Alpha" + "a" * 42
BETA = "5Beta" + "b" * 43
GAMMA = "5Gamma" + "c" * 42
TP = 5.0e14  # FLOP/s of every pass: inside an H100's band, so no pass refutes its claim
AGE_S = 3600  # every worker was first seen this long ago

H100 = GpuRecord(slot=0, model="H100", vram_mb=81_559)


@dataclass(frozen=True)
class Expected:
    miners: int = 3
    workers: int = 4
    workers_online: int = 3  # GAMMA's worker left 50 minutes ago
    gpus: int = 4  # ALPHA: 1 + 2 H100, GAMMA: 1 A100
    gpus_by_model: tuple[tuple[str, int], ...] = (("A100", 1), ("H100", 3))
    passed: int = 12  # in the window: ALPHA 5 + 4, BETA 3
    failed: int = 4  # ALPHA 1 timeout, BETA 1 error, GAMMA 2 wrong
    wrong: int = 2
    in_flight: int = 1
    abandoned: int = 1
    # three workers online every bucket since first seen (13 of 13), GAMMA's 3 of 13
    availability: float = (1.0 + 1.0 + 1.0 + 3 / 13) / 4
    jobs: tuple[tuple[str, int], ...] = (("queued", 1), ("running", 1), ("succeeded", 2))
    leases: tuple[tuple[str, int], ...] = (("active", 1), ("released", 1))
    weight_sets: int = 3
    newest_weights: tuple[tuple[str, float], ...] = ((ALPHA, 0.75), (BETA, 0.25), (GAMMA, 0.0))


EXPECTED = Expected()


def _challenge(
    worker_id: int,
    miner_id: int,
    status: ChallengeStatus,
    at: int,
    *,
    reason: str | None = None,
) -> ChallengeRecord:
    passed = status is ChallengeStatus.PASSED
    done = status.is_terminal
    return ChallengeRecord(
        id=secrets.token_hex(16),
        worker_id=worker_id,
        miner_id=miner_id,
        profile="cpu-f64",
        n=256,
        seed=secrets.token_hex(32),
        status=status,
        failure_reason=reason,
        claimed_gpu=None,
        root="ab" * 32 if passed else None,
        issued_at=at,
        deadline_at=at + 60,
        finished_at=at + 1 if done else None,
        rtt_s=0.001,
        commit_s=0.5 if passed else None,
        compute_s=0.4 if passed else None,
        throughput=TP if passed else None,
    )


async def seed_network(store: Store, now: float) -> None:
    t = int(now)
    first_seen = t - AGE_S
    now_bucket = bucket_of(t)
    async with store.session() as s:
        alpha = await upsert_miner(s, ALPHA, uid=1, axon="127.0.0.1:9001", at=first_seen)
        beta = await upsert_miner(s, BETA, uid=2, axon="127.0.0.1:9002", at=first_seen)
        gamma = await upsert_miner(s, GAMMA, uid=3, axon="127.0.0.1:9003", at=first_seen)
        a = await upsert_workers(s, alpha.id, ["a-gpu1", "a-gpu2"], at=first_seen)
        b = await upsert_workers(s, beta.id, ["b-cpu"], at=first_seen)
        c = await upsert_workers(s, gamma.id, ["c-gpu"], at=first_seen)
        one, two = (H100,), (H100, GpuRecord(slot=1, model="H100", vram_mb=81_559))
        await set_worker_hardware(s, a["a-gpu1"], WorkerHardware("EPYC", 32, 256_000, None, one))
        await set_worker_hardware(s, a["a-gpu2"], WorkerHardware("EPYC", 32, 256_000, None, two))
        await set_worker_hardware(s, b["b-cpu"], WorkerHardware("Xeon", 8, 32_000, None, ()))
        a100 = (GpuRecord(slot=0, model="A100", vram_mb=40_960),)
        await set_worker_hardware(s, c["c-gpu"], WorkerHardware("EPYC", 16, 64_000, None, a100))
        await set_worker_states(
            s, {a["a-gpu2"]: WorkerState.BUSY, c["c-gpu"]: WorkerState.OFFLINE}, at=t
        )
        for bucket in range(bucket_of(first_seen), now_bucket + 1):
            online = [a["a-gpu1"], a["a-gpu2"], b["b-cpu"]]
            if bucket < bucket_of(first_seen) + 3:
                online.append(c["c-gpu"])
            await mark_online(s, online, bucket)

        S = ChallengeStatus
        a1, a2, b1, c1 = a["a-gpu1"], a["a-gpu2"], b["b-cpu"], c["c-gpu"]
        records = [_challenge(a1, alpha.id, S.PASSED, t - 60 * i) for i in range(5)]
        records += [_challenge(a1, alpha.id, S.TIMED_OUT, t - 400, reason="deadline")]
        records += [_challenge(a2, alpha.id, S.PASSED, t - 90 * i - 30) for i in range(4)]
        records += [_challenge(b1, beta.id, S.PASSED, t - 120 * i - 10) for i in range(3)]
        records += [_challenge(b1, beta.id, S.ERRORED, t - 500, reason="malformed")]
        records += [_challenge(b1, beta.id, S.ISSUED, t - 2)]
        records += [_challenge(b1, beta.id, S.ABANDONED, t - 700, reason="validator_restart")]
        records += [
            _challenge(c1, gamma.id, S.FAILED, t - 3000 - i, reason="wrong_entry") for i in range(2)
        ]
        # outside the 180-minute scoring window: shown by nothing but a long history
        records += [_challenge(a1, alpha.id, S.PASSED, t - 5 * 3600)]
        await bulk_insert_challenges(s, records)

        for i, (w1, w2) in enumerate([(0.6, 0.4), (0.7, 0.3), (0.75, 0.25)]):
            await record_weights(
                s,
                netuid=1,
                version_key=1,
                weights={1: w1, 2: w2, 3: 0.0},
                computed_at=t - 600 + 290 * i,
                block=100 + 20 * i,
                accepted=True,
            )

        tenant = await create_tenant(s, "acme", balance=100.0, at=first_seen)
        jobs = [JobState.SUCCEEDED, JobState.SUCCEEDED, JobState.RUNNING, JobState.QUEUED]
        for i, state in enumerate(jobs):
            await insert_job(s, _job(tenant.id, f"job-{i}", state, now))
        await insert_lease(s, _lease(tenant.id, "lease-0", LeaseState.ACTIVE, now))
        await insert_lease(s, _lease(tenant.id, "lease-1", LeaseState.RELEASED, now))
    assert BUCKET_SECONDS == 300  # the expected shares above count 5-minute buckets


def _job(tenant_id: int, job_id: str, state: JobState, now: float) -> JobRecord:
    return JobRecord(
        id=job_id,
        tenant_id=tenant_id,
        state=state,
        spec_json=json.dumps({"command": ["true"]}),
        idempotency_key=None,
        attempts=1,
        worker_id="a-gpu2",
        miner_hotkey=ALPHA,
        created_at=now - 100,
        started_at=now - 90,
        finished_at=now - 80 if state.is_terminal else None,
        exit_code=0 if state.is_terminal else None,
        stdout_tail="",
        stderr_tail="",
        error=None,
        cost=0.01,
    )


def _lease(tenant_id: int, lease_id: str, state: LeaseState, now: float) -> LeaseRecord:
    return LeaseRecord(
        id=lease_id,
        tenant_id=tenant_id,
        state=state,
        spec_json=json.dumps({"duration_s": 600}),
        worker_id="a-gpu1",
        miner_hotkey=ALPHA,
        gpu_model="H100",
        gpu_count=1,
        price_per_s=0.0008,
        unit_price_micro=800,
        created_at=now - 300,
        ends_at=now + 300,
        ended_at=now - 10 if state.is_terminal else None,
        billed_until=now - 60,
        cost=0.1,
        receipts=2,
    )
