"""`byteleap gateway tenant new`: a key is printed once and works; bad input changes nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from byteleap.gateway.core import hash_key
from byteleap.protocol.billing import DEFAULT_MAX_WORKERS
from byteleap.store import open_store
from byteleap.store.cloud import tenant_by_key_hash


def gateway(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "byteleap.cli", "gateway", *args, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_tenant_new_prints_a_working_key(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway.store]\nurl = "{url}"\n')
    created = gateway(config, "tenant", "new", "acme", "--balance", "5")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("blk_")

    async def tenant() -> object:
        store = await open_store(url)
        try:
            async with store.session() as s:
                return await tenant_by_key_hash(s, hash_key(key))
        finally:
            await store.close()

    record = asyncio.run(tenant())
    assert record is not None and record.name == "acme" and record.balance == 5.0  # type: ignore[attr-defined]
    again = gateway(config, "tenant", "new", "acme")
    assert again.returncode != 0 and again.stdout == ""
    negative = gateway(config, "tenant", "new", "other", "--balance", "-1")
    assert negative.returncode != 0


def test_tenant_new_sets_max_workers(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway.store]\nurl = "{url}"\n')
    created = gateway(config, "tenant", "new", "acme", "--max-workers", "3")
    assert created.returncode == 0, created.stderr
    plain = gateway(config, "tenant", "new", "plain")
    assert plain.returncode == 0, plain.stderr

    async def quotas() -> list[int]:
        store = await open_store(url)
        try:
            async with store.session() as s:
                found = [
                    await tenant_by_key_hash(s, hash_key(out.stdout.strip()))
                    for out in (created, plain)
                ]
                return [t.max_workers for t in found if t is not None]
        finally:
            await store.close()

    assert asyncio.run(quotas()) == [3, DEFAULT_MAX_WORKERS]
    negative = gateway(config, "tenant", "new", "other", "--max-workers", "-1")
    assert negative.returncode != 0 and negative.stdout == ""


def test_tenant_revoke_key_revokes_it_once(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway.store]\nurl = "{url}"\n')
    key = gateway(config, "tenant", "new", "acme").stdout.strip()

    def revoke() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "byteleap.cli", "gateway", "tenant", "revoke-key",
             "--config", str(config)],
            capture_output=True, text=True, timeout=60,
            env={**os.environ, "BYTELEAP_API_KEY": key},
        )  # fmt: skip

    revoked = revoke()
    assert revoked.returncode == 0, revoked.stderr

    async def tenant() -> object:
        store = await open_store(url)
        try:
            async with store.session() as s:
                return await tenant_by_key_hash(s, hash_key(key))
        finally:
            await store.close()

    assert asyncio.run(tenant()) is None
    again = revoke()
    assert again.returncode == 1 and "no such live key" in again.stderr


def test_tenant_quota_shows_and_changes_quotas_and_refuses_bad_input(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gw.db'}"
    config = tmp_path / "gateway.toml"
    config.write_text(f'[gateway.store]\nurl = "{url}"\n')
    created = gateway(
        config, "tenant", "new", "acme", "--max-running-jobs", "2", "--max-queued-jobs", "5"
    )
    assert created.returncode == 0, created.stderr
    shown = gateway(config, "tenant", "quota", "acme")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.splitlines() == [
        f"max_workers: {DEFAULT_MAX_WORKERS}",
        "workers_held: 0",
        "max_running_jobs: 2",
        "running_jobs: 0",
        "max_queued_jobs: 5",
    ]
    changed = gateway(
        config, "tenant", "quota", "acme", "--max-workers", "1", "--max-running-jobs", "7"
    )
    assert changed.returncode == 0, changed.stderr
    assert "max_workers: 1" in changed.stdout and "max_running_jobs: 7" in changed.stdout
    assert "max_queued_jobs: 5" in changed.stdout  # not given: kept

    async def stored() -> tuple[int, int, int]:
        store = await open_store(url)
        try:
            async with store.session() as s:
                tenant = await tenant_by_key_hash(s, hash_key(created.stdout.strip()))
                assert tenant is not None
                return tenant.max_workers, tenant.max_running_jobs, tenant.max_queued_jobs
        finally:
            await store.close()

    assert asyncio.run(stored()) == (1, 7, 5)
    unknown = gateway(config, "tenant", "quota", "nobody", "--max-workers", "3")
    assert unknown.returncode == 1 and "no tenant named 'nobody'" in unknown.stderr
    negative = gateway(config, "tenant", "quota", "acme", "--max-workers", "-1")
    assert negative.returncode != 0 and negative.stdout == ""
    assert asyncio.run(stored()) == (1, 7, 5)  # bad input changed nothing
