"""A small run of the scale benchmark on both stores (speed is measured by `make bench`)."""

from __future__ import annotations

import pytest

from byteleap.validator.bench import run_scale_bench


async def test_scale_bench_on_sqlite(sqlite_url: str) -> None:
    result = await run_scale_bench(150, 2, url=sqlite_url)
    assert result["synthetic_history"] is True
    assert result["workers"] == 150 and result["miners"] == 2
    assert result["challenges"] == 150 * 45
    assert result["weights"] == 2
    assert result["seconds"] > 0


@pytest.mark.postgres
async def test_scale_bench_creates_and_drops_its_own_postgres_database(pg_database: str) -> None:
    result = await run_scale_bench(250, 30)
    assert result["backend"] == "postgresql+asyncpg"
    assert result["miners"] == 3 and result["weights"] == 3
