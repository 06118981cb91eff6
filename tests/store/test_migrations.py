"""Migrations: real round trips and no drift between models and migrations, on both backends."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from byteleap.store import current, downgrade, head_revision, open_store, upgrade
from byteleap.store.models import Base

TABLES = {
    "miners", "workers", "gpus", "availability_spans", "worker_ips", "challenges",
    "weight_sets", "weight_entries", "chain_events", "lease_receipts",
    "services", "service_replicas",
    "tenants", "api_keys", "jobs", "tenant_ledger", "tenant_holds", "leases", "job_artifacts",
    "output_validations", "validation_runs", "lease_health", "lease_probe_failures",
    "tenant_networks", "tenant_network_members", "tenant_network_rejections",
    "gateway_leadership", "gateway_secrets", "service_load_reports",
}  # fmt: skip


def _tables(conn: Connection) -> set[str]:
    return set(sa.inspect(conn).get_table_names()) - {"alembic_version"}


def _diff(conn: Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(ctx, Base.metadata))


async def _tables_at(url: str) -> set[str]:
    store = await open_store(url, require_head=False)
    try:
        return await store.run_sync(_tables, transaction=False)
    finally:
        await store.close()


async def test_round_trip_head_base_head(empty_url: str) -> None:
    assert await upgrade(empty_url) == head_revision()
    assert await _tables_at(empty_url) == TABLES
    assert await downgrade(empty_url, "base") is None
    assert await _tables_at(empty_url) == set()
    assert await current(empty_url) is None
    assert await upgrade(empty_url, "head") == head_revision()
    assert await current(empty_url) == head_revision()
    assert await _tables_at(empty_url) == TABLES


async def test_models_and_migrations_do_not_drift(empty_url: str) -> None:
    await upgrade(empty_url)
    store = await open_store(empty_url)
    try:
        diff = await store.run_sync(_diff, transaction=False)
    finally:
        await store.close()
    assert diff == []


async def test_drift_check_sees_a_difference(empty_url: str) -> None:
    """The drift check is live: a table the migrations do not create shows up."""
    await upgrade(empty_url)
    extra = sa.MetaData()
    sa.Table("not_migrated", extra, sa.Column("id", sa.Integer, primary_key=True))
    store = await open_store(empty_url)
    try:

        def diff_with_extra(conn: Connection) -> list[Any]:
            ctx = MigrationContext.configure(conn)
            merged = sa.MetaData()
            for table in [*Base.metadata.tables.values(), *extra.tables.values()]:
                table.to_metadata(merged)
            return list(compare_metadata(ctx, merged))

        diff = await store.run_sync(diff_with_extra, transaction=False)
    finally:
        await store.close()
    assert [d[0] for d in diff] == ["add_table"]
