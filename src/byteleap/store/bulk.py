"""Bulk writes: COPY on PostgreSQL, multi-row INSERT on SQLite, inside the caller's session."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

CHUNK = 5_000  # keeps every statement below both drivers' bind-parameter limits


def chunked(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


async def copy_rows(
    session: AsyncSession, table: sa.Table, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]
) -> int:
    """Insert plain tuples (in ``columns`` order) into ``table``; returns the row count."""
    conn = await session.connection()
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        count = 0
        for batch in chunked(rows, 100_000):
            await driver.copy_records_to_table(table.name, records=batch, columns=list(columns))
            count += len(batch)
        return count
    count = 0
    for batch in chunked(rows):
        await session.execute(
            table.insert(), [dict(zip(columns, row, strict=True)) for row in batch]
        )
        count += len(batch)
    return count
