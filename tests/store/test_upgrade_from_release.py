"""Upgrading a store the previous release wrote: its data survives every migration since and
reads back through today's store functions; and `upgrade` at head is a no-op, safe to run on
every start.

The previous release's schema head is 0009 (the newest migration as of commit 2910091); the
rows are written with raw SQL against that schema, as that release's code would have left
them, not through today's models.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from byteleap.protocol.api import JobState, LeaseState
from byteleap.store import (
    ChallengeStatus,
    available,
    challenge_summaries,
    current,
    get_challenge,
    get_job,
    get_lease,
    get_miner,
    get_receipt,
    get_tenant,
    head_revision,
    hold,
    ip_history,
    latest_weights,
    ledger,
    list_workers,
    online_buckets,
    open_store,
    set_worker_public_key,
    tenant_by_key_hash,
    upgrade,
)

PREVIOUS_RELEASE_HEAD = "0009"
T0 = 1_700_000_000
HOTKEY = "5F" + "a" * 46

OLD_ROWS = [
    f"INSERT INTO miners (id, hotkey, uid, axon, first_seen_at, last_seen_at) "
    f"VALUES (1, '{HOTKEY}', 7, '10.0.0.1:8091', {T0}, {T0 + 600})",
    "INSERT INTO workers (id, miner_id, worker_key, state, cpu_model, cpu_cores, ram_mb, "
    f"disk_mb, first_seen_at, last_seen_at) VALUES (1, 1, 'w-a', 'idle', 'EPYC', 64, 262144, "
    f"1000000, {T0}, {T0 + 600}), (2, 1, 'w-b', 'leased', NULL, NULL, NULL, NULL, {T0}, {T0})",
    "INSERT INTO gpus (id, worker_id, slot, model, vram_mb, uuid) "
    "VALUES (1, 1, 0, 'NVIDIA H100 80GB HBM3', 81559, 'GPU-1')",
    f"INSERT INTO availability_spans (id, worker_id, start_bucket, end_bucket) "
    f"VALUES (1, 1, {T0 // 300}, {T0 // 300 + 2})",
    f"INSERT INTO worker_ips (id, worker_id, ip, first_seen_at, last_seen_at) "
    f"VALUES (1, 1, '10.0.0.9', {T0}, {T0 + 600})",
    "INSERT INTO challenges (id, worker_id, miner_id, profile, n, seed, status, failure_reason, "
    "claimed_gpu, root, issued_at, deadline_at, finished_at, rtt_s, commit_s, compute_s, "
    f"throughput) VALUES ('c-1', 1, 1, 'cuda-f16', 8192, '{'ab' * 32}', 'passed', NULL, "
    f"'NVIDIA H100 80GB HBM3', 'root', {T0 + 10}, {T0 + 70}, {T0 + 12}, 0.01, 1.9, 1.89, 5.8e14)",
    "INSERT INTO weight_sets (id, netuid, block, version_key, computed_at, accepted, message) "
    f"VALUES (1, 1, 500, 1000, {T0 + 700}, TRUE, NULL)",
    "INSERT INTO weight_entries (weight_set_id, uid, weight) VALUES (1, 7, 1.0)",
    "INSERT INTO lease_receipts (receipt_id, version, lease_id, netuid, gateway_hotkey, "
    "miner_hotkey, worker_id, gpu_model, gpu_count, period_start, period_end, seconds, "
    "unit_price_micro, amount_micro, currency, gateway_signature, miner_signature, recorded_at) "
    f"VALUES ('r-1', 1, 'anon-1', 1, '5G{'g' * 46}', '{HOTKEY}', 'w-b', 'H100', 1, {T0}, "
    f"{T0 + 60}, 60, 800, 48000, 'TAO', '{'1' * 128}', '{'2' * 128}', {T0 + 61})",
    "INSERT INTO tenants (id, name, balance, max_running_jobs, max_queued_jobs, created_at) "
    f"VALUES (1, 'acme', 40.0, 10, 1000, {T0})",
    f"INSERT INTO api_keys (id, tenant_id, key_hash, created_at, revoked_at) "
    f"VALUES (1, 1, '{'f' * 64}', {T0}, NULL)",
    "INSERT INTO jobs (id, tenant_id, state, spec_json, idempotency_key, attempts, worker_id, "
    "miner_hotkey, created_at, started_at, finished_at, exit_code, stdout_tail, stderr_tail, "
    f"error, cost, price_per_s) VALUES ('job-1', 1, 'succeeded', '{{\"image\": \"x\"}}', 'k1', "
    f"1, 'w-a', '{HOTKEY}', {T0}.5, {T0 + 1}.25, {T0 + 31}.75, 0, 'hello', '', NULL, 0.3, 0.01)",
    "INSERT INTO tenant_ledger (id, tenant_id, amount, balance_after, reason, job_id, at) "
    f"VALUES (1, 1, 50.0, 50.0, 'topup', NULL, {T0}), "
    f"(2, 1, -10.0, 40.0, 'lease', 'lease-1', {T0 + 60}.5)",
    "INSERT INTO leases (id, tenant_id, state, spec_json, worker_id, miner_hotkey, gpu_model, "
    "gpu_count, price_per_s, unit_price_micro, created_at, ends_at, ended_at, billed_until, "
    f"cost, receipts, settled) VALUES ('lease-1', 1, 'active', '{{}}', 'w-b', '{HOTKEY}', "
    f"'H100', 1, 0.0008, 800, {T0}.0, {T0 + 3600}.0, NULL, {T0 + 60}.0, 10.0, 1, FALSE)",
]


async def write_previous_release_rows(url: str) -> None:
    assert await upgrade(url, PREVIOUS_RELEASE_HEAD) == PREVIOUS_RELEASE_HEAD
    async with await open_store(url, require_head=False) as store, store.session() as s:
        for sql in OLD_ROWS:
            await s.execute(sa.text(sql))


async def test_previous_release_data_survives_the_upgrade(empty_url: str) -> None:
    await write_previous_release_rows(empty_url)
    assert await upgrade(empty_url) == head_revision()
    async with await open_store(empty_url) as store, store.session() as s:
        miner = await get_miner(s, HOTKEY)
        assert miner is not None and (miner.uid, miner.axon) == (7, "10.0.0.1:8091")
        workers = {w.worker_key: w for w in await list_workers(s, miner.id)}
        assert workers["w-a"].hardware.gpus[0].model == "NVIDIA H100 80GB HBM3"
        assert workers["w-a"].hardware.ram_mb == 262144
        assert await online_buckets(s, T0 // 300, T0 // 300 + 10) == {1: 2}
        assert [r.ip for r in await ip_history(s, since=T0 - 1)] == ["10.0.0.9"]
        c = await get_challenge(s, "c-1")
        assert (c.status, c.throughput, c.n) == (ChallengeStatus.PASSED, 5.8e14, 8192)
        (summary,) = await challenge_summaries(s, since=T0, until=T0 + 100)
        assert summary.throughputs == (5.8e14,)
        weights = await latest_weights(s)
        assert weights is not None and weights.weights == {7: 1.0}
        assert (await get_receipt(s, "r-1")).amount_micro == 48000
        tenant = await tenant_by_key_hash(s, "f" * 64)
        assert tenant is not None and tenant.name == "acme"
        job = await get_job(s, "job-1")
        assert (job.state, job.stdout_tail, job.cost) == (JobState.SUCCEEDED, "hello", 0.3)
        assert job.started_at == T0 + 1.25
        assert [e.amount for e in await ledger(s, 1)] == [-10.0, 50.0]
        lease = await get_lease(s, "lease-1")
        assert (lease.state, lease.billed_until, lease.worker_public_key) == (
            LeaseState.ACTIVE,
            T0 + 60.0,
            None,
        )
        # And the columns and tables added since take writes next to the old rows.
        await set_worker_public_key(s, workers["w-a"].id, "ee" * 32)
        assert await hold(s, 1, "lease-1", 15.0, at=T0 + 61.0) == 15.0
        assert await available(s, 1) == 25.0
        assert (await get_tenant(s, 1)).balance == 40.0


def byteleap_db(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byteleap.cli", "db", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


async def _all_rows(url: str) -> list[tuple[object, ...]]:
    async with await open_store(url) as store, store.session() as s:
        tables = ["miners", "workers", "challenges", "jobs", "leases", "tenant_ledger"]
        out: list[tuple[object, ...]] = []
        for name in tables:
            rows = await s.execute(sa.text(f"SELECT * FROM {name} ORDER BY 1"))
            out.extend((name, *r) for r in rows)
        return out


async def test_upgrade_on_every_start_is_a_no_op_at_head(empty_url: str) -> None:
    await write_previous_release_rows(empty_url)
    first = byteleap_db("upgrade", "--url", empty_url)
    assert first.returncode == 0, first.stderr
    rows = await _all_rows(empty_url)
    assert len(rows) == 8
    for _ in range(2):
        again = byteleap_db("upgrade", "--url", empty_url)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip() == f"at revision {head_revision()}"
        assert await current(empty_url) == head_revision()
        assert await _all_rows(empty_url) == rows


@pytest.mark.postgres
async def test_concurrent_upgrades_on_start_take_turns(pg_url: str) -> None:
    """A validator and two gateways starting together each run `upgrade`."""
    revisions = await asyncio.gather(*(upgrade(pg_url) for _ in range(3)))
    assert revisions == [head_revision()] * 3


_UPGRADE_AT = """
import asyncio, sys, time
from byteleap.store import upgrade
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))  # all begin together, imports done
print(asyncio.run(upgrade(sys.argv[1])))
"""


def test_concurrent_upgrades_of_one_sqlite_file_take_turns(tmp_path: Path) -> None:
    """`byteleap init` puts the validator and the gateway on one SQLite file, and both upgrade
    on start: they once raced, and one died of 'table chain_events already exists'."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'validator.db'}"
    begin = time.time() + 5
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", _UPGRADE_AT, url, str(begin)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-2000:]
        assert out.strip() == head_revision()
