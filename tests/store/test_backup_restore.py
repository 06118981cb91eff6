"""Backup and restore of a real store, on SQLite and PostgreSQL: a restore brings back every row
the backup held, and refuses (changing nothing) what is not a backup of this store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from byteleap.protocol.api import JobState, LeaseState
from byteleap.store import (
    ChallengeStatus,
    JobRecord,
    LeaseRecord,
    NewChallenge,
    StoreBackupError,
    advance_challenge,
    create_tenant,
    credit,
    downgrade,
    head_revision,
    insert_job,
    insert_lease,
    open_store,
    record_challenge,
    upgrade,
    upsert_miner,
    upsert_workers,
)
from byteleap.store.dump import backup, restore
from byteleap.store.models import Base

T0 = 1_700_000_000


async def fill(url: str) -> None:
    async with await open_store(url) as store, store.session() as s:
        miner = await upsert_miner(s, "5Hot" + "k" * 44, uid=3, axon="1.2.3.4:8091", at=T0)
        ids = await upsert_workers(s, miner.id, ["w-1", "w-2"], at=T0)
        for k, wid in enumerate(ids.values()):
            await record_challenge(
                s,
                NewChallenge(
                    id=f"c{k}", worker_id=wid, miner_id=miner.id, profile="cpu-f64", n=512,
                    seed="ab" * 32, issued_at=T0 + k, deadline_at=T0 + 60,
                ),
            )  # fmt: skip
        await advance_challenge(s, "c0", ChallengeStatus.FAILED, at=T0 + 9, failure_reason="bad")
        tenant = await create_tenant(s, "acme 'quoted' ü", balance=0.0, at=T0)
        await credit(s, tenant.id, 12.5, reason="topup", job_id=None, at=T0 + 0.25)
        await insert_job(
            s,
            JobRecord(
                id="job-1", tenant_id=tenant.id, state=JobState.QUEUED, spec_json='{"a": 1}',
                idempotency_key=None, attempts=0, worker_id=None, miner_hotkey=None,
                created_at=T0 + 0.5, started_at=None, finished_at=None, exit_code=None,
                stdout_tail="line\nwith\ttabs \\ and quotes '\"", stderr_tail="", error=None,
                cost=0.0,
            ),
        )  # fmt: skip
        await insert_lease(
            s,
            LeaseRecord(
                id="lease-1", tenant_id=tenant.id, state=LeaseState.ACTIVE, spec_json="{}",
                worker_id="w-1", miner_hotkey=miner.hotkey, gpu_model="H100", gpu_count=1,
                price_per_s=0.001, unit_price_micro=1000, created_at=T0 + 1.0,
                ends_at=T0 + 3601.0, ended_at=None, billed_until=T0 + 1.0, cost=0.0,
                receipts=0, worker_public_key="ee" * 32,
            ),
        )  # fmt: skip


def _rows(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    out = {}
    for table in [*Base.metadata.sorted_tables, sa.table("alembic_version", sa.column("v"))]:
        if isinstance(table, sa.Table):
            order = list(table.primary_key.columns)
            rows = conn.execute(sa.select(table).order_by(*order))
        else:
            rows = conn.execute(sa.text("SELECT version_num FROM alembic_version"))
        out[table.name] = [tuple(r) for r in rows]
    return out


async def snapshot(url: str) -> dict[str, list[tuple[Any, ...]]]:
    async with await open_store(url, require_head=False) as store:
        return await store.run_sync(_rows, transaction=False)


async def change_everything(url: str) -> None:
    async with await open_store(url) as store, store.session() as s:
        await s.execute(sa.text("DELETE FROM challenges WHERE id = 'c1'"))
        await s.execute(sa.text("UPDATE tenants SET balance = 99"))
        await upsert_miner(s, "5Other" + "x" * 42, uid=4, axon=None, at=T0 + 5)


async def test_backup_then_restore_brings_back_every_row(empty_url: str, tmp_path: Path) -> None:
    await upgrade(empty_url)
    await fill(empty_url)
    original = await snapshot(empty_url)
    assert len(original["challenges"]) == 2 and len(original["tenant_ledger"]) == 1

    made = await backup(empty_url, tmp_path / "one" / "store.backup")
    assert made.revision == head_revision()
    assert made.tables == len(Base.metadata.tables) + 1  # and alembic_version
    assert made.bytes == (tmp_path / "one" / "store.backup").stat().st_size > 0
    assert [p.name for p in (tmp_path / "one").iterdir()] == ["store.backup"]

    await change_everything(empty_url)
    assert await snapshot(empty_url) != original

    restored = await restore(empty_url, tmp_path / "one" / "store.backup")
    assert await snapshot(empty_url) == original
    assert restored.rows == sum(len(rows) for rows in original.values())
    # The restored store is a working one: it opens at head and takes writes.
    await change_everything(empty_url)


async def _refused(url: str, file: Path, match: str) -> None:
    before = await snapshot(url)
    with pytest.raises(StoreBackupError, match=match):
        await restore(url, file)
    assert await snapshot(url) == before


async def test_restore_refuses_what_is_not_a_backup(empty_url: str, tmp_path: Path) -> None:
    await upgrade(empty_url)
    await fill(empty_url)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup\n" * 10)
    await _refused(empty_url, junk, "is not a store backup")
    await _refused(empty_url, tmp_path / "missing", "cannot read")
    sqlite_kind = empty_url.startswith("sqlite")
    # A file with the right magic but nothing behind it.
    fake = tmp_path / "fake"
    fake.write_bytes((b"SQLite format 3\x00" if sqlite_kind else b"PGDMP") + b"\x01" * 200)
    await _refused(empty_url, fake, "not a byteleap store backup|failed")
    # A backup of the other kind of database.
    other = tmp_path / "other"
    other.write_bytes((b"PGDMP" if sqlite_kind else b"SQLite format 3\x00") + b"\x00" * 200)
    await _refused(empty_url, other, "restores only into the kind of database")


async def test_restore_refuses_a_backup_newer_than_this_code(
    empty_url: str, tmp_path: Path
) -> None:
    await upgrade(empty_url)
    await fill(empty_url)
    async with await open_store(empty_url) as store, store.session() as s:
        await s.execute(sa.text("UPDATE alembic_version SET version_num = '0999'"))
    await backup(empty_url, tmp_path / "newer.backup")
    async with await open_store(empty_url, require_head=False) as store, store.session() as s:
        await s.execute(sa.text(f"UPDATE alembic_version SET version_num = '{head_revision()}'"))
    await change_everything(empty_url)
    await _refused(empty_url, tmp_path / "newer.backup", "revision 0999, which this code")


async def test_an_older_backup_restores_and_then_upgrades(empty_url: str, tmp_path: Path) -> None:
    """A backup of the previous release's schema, restored into an empty database (the
    rollback-then-roll-forward case), then brought to head."""
    await upgrade(empty_url, "0009")
    await backup(empty_url, tmp_path / "old.backup")
    await downgrade(empty_url, "base")
    summary = await restore(empty_url, tmp_path / "old.backup")
    assert summary.revision == "0009"
    assert await upgrade(empty_url) == head_revision()


@pytest.mark.postgres
async def test_postgres_restore_refuses_to_mix_two_schemas(pg_url: str, tmp_path: Path) -> None:
    await upgrade(pg_url, "0009")
    await backup(pg_url, tmp_path / "old.backup")
    await upgrade(pg_url)
    await fill(pg_url)
    await _refused(pg_url, tmp_path / "old.backup", "tables the backup does not .*tenant_holds")
