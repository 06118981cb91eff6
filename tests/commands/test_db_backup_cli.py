"""`byteleap db backup|restore|prune` as an operator runs them (real subprocesses)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from byteleap.store import head_revision, open_store, upgrade, upsert_miner


def byteleap_db(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byteleap.cli", "db", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


async def miners(url: str) -> list[str]:
    async with await open_store(url) as store, store.session() as s:
        return sorted(await s.scalars(sa.text("SELECT hotkey FROM miners")))


async def add_miner(url: str, hotkey: str) -> None:
    async with await open_store(url) as store, store.session() as s:
        await upsert_miner(s, hotkey, uid=None, axon=None, at=1)


async def round_trip(url: str, file: Path) -> None:
    await upgrade(url)
    await add_miner(url, "kept")
    made = byteleap_db("backup", str(file), "--url", url)
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("backed up ") and f"revision {head_revision()}" in made.stdout
    assert f"({file})" in made.stdout
    await add_miner(url, "after-backup")
    back = byteleap_db("restore", str(file), "--url", url)
    assert back.returncode == 0, back.stderr
    assert back.stdout.startswith("restored ") and " tables, " in back.stdout
    assert await miners(url) == ["kept"]


async def test_sqlite_backup_and_restore(tmp_path: Path) -> None:
    await round_trip(f"sqlite+aiosqlite:///{tmp_path / 'v.db'}", tmp_path / "v.backup")


@pytest.mark.postgres
async def test_postgres_backup_and_restore(pg_url: str, tmp_path: Path) -> None:
    await round_trip(pg_url, tmp_path / "v.dump")


async def test_restore_of_a_non_backup_is_one_clear_line(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'v.db'}"
    await upgrade(url)
    await add_miner(url, "kept")
    junk = tmp_path / "junk.txt"
    junk.write_text("hello\n")
    result = byteleap_db("restore", str(junk), "--url", url)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error (store_backup):")
    assert "is not a store backup" in result.stderr
    assert await miners(url) == ["kept"]


async def test_prune_uses_the_configured_retention(tmp_path: Path) -> None:
    db = tmp_path / "v.db"
    config = tmp_path / "v.toml"
    config.write_text(
        f'[validator]\nchallenge_retention_s = 864000\n[validator.store]\nurl = "sqlite+aiosqlite:///{db}"\n'
    )
    url = f"sqlite+aiosqlite:///{db}"
    await upgrade(url)
    now = int(time.time())
    async with await open_store(url) as store, store.session() as s:
        await s.execute(sa.text("INSERT INTO miners VALUES (1, 'm', NULL, NULL, 0, 0)"))
        await s.execute(
            sa.text(
                "INSERT INTO workers VALUES (1, 1, 'w', 'idle', NULL, NULL, NULL, NULL, 0, 0, NULL)"
            )
        )
        for cid, age_days in (("old", 11), ("young", 9)):
            at = now - age_days * 86400
            await s.execute(
                sa.text(
                    "INSERT INTO challenges (id, worker_id, miner_id, profile, n, seed, status, "
                    f"issued_at, deadline_at) VALUES ('{cid}', 1, 1, 'cpu-f64', 8, 's', "
                    f"'timed_out', {at}, {at + 60})"
                )
            )
    result = byteleap_db("prune", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "deleted 1 challenges older than 10 days"
    async with await open_store(url) as store, store.session() as s:
        assert list(await s.scalars(sa.text("SELECT id FROM challenges"))) == ["young"]
    config.write_text("[validator]\nchallenge_retention_s = 3600\n")
    refused = byteleap_db("prune", "--config", str(config))
    assert refused.returncode != 0
    assert "challenge_retention_s" in refused.stderr and "longest scoring window" in refused.stderr
