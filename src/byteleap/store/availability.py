"""Worker availability as runs of online 5-minute buckets.

A bucket is ``epoch_seconds // BUCKET_SECONDS``. Each row of ``availability_spans``
is a run ``[start_bucket, end_bucket)`` in which the worker was seen online;
marking the next bucket extends the run in place, so an always-online worker
costs one row however long the window.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.store.bulk import chunked, copy_rows
from byteleap.store.models import AvailabilitySpan

BUCKET_SECONDS = 300


def bucket_of(epoch_s: float) -> int:
    """The 5-minute bucket holding this UTC epoch second."""
    return int(epoch_s // BUCKET_SECONDS)


@dataclass(frozen=True, slots=True)
class SpanRow:
    worker_id: int
    start_bucket: int
    end_bucket: int  # exclusive

    @property
    def buckets(self) -> int:
        return self.end_bucket - self.start_bucket


def spans_from_buckets(worker_id: int, buckets: Iterable[int]) -> list[SpanRow]:
    """Collapse a set of online buckets into runs (pure; for imports and synthetic history)."""
    spans: list[SpanRow] = []
    start = prev = None
    for b in sorted(set(buckets)):
        if prev is not None and b == prev + 1:
            prev = b
            continue
        if start is not None and prev is not None:
            spans.append(SpanRow(worker_id, start, prev + 1))
        start = prev = b
    if start is not None and prev is not None:
        spans.append(SpanRow(worker_id, start, prev + 1))
    return spans


async def mark_online(session: AsyncSession, worker_ids: Sequence[int], bucket: int) -> None:
    """Record that these workers were online during ``bucket`` (idempotent)."""
    s = AvailabilitySpan
    for batch in chunked(dict.fromkeys(worker_ids)):
        covered = set(
            await session.scalars(
                sa.select(s.worker_id).where(
                    s.worker_id.in_(batch), s.start_bucket <= bucket, s.end_bucket > bucket
                )
            )
        )
        extendable = set(
            await session.scalars(
                sa.select(s.worker_id).where(s.worker_id.in_(batch), s.end_bucket == bucket)
            )
        )
        extend = [w for w in batch if w in extendable and w not in covered]
        if extend:
            await session.execute(
                sa.update(s)
                .where(s.worker_id.in_(extend), s.end_bucket == bucket)
                .values(end_bucket=bucket + 1)
            )
        fresh = [w for w in batch if w not in covered and w not in extendable]
        if fresh:
            await session.execute(
                sa.insert(s),
                [{"worker_id": w, "start_bucket": bucket, "end_bucket": bucket + 1} for w in fresh],
            )


async def bulk_insert_spans(session: AsyncSession, spans: Iterable[SpanRow]) -> int:
    """Insert many runs at once; the caller guarantees they do not overlap per worker."""
    rows = ((sp.worker_id, sp.start_bucket, sp.end_bucket) for sp in spans)
    columns = ("worker_id", "start_bucket", "end_bucket")
    return await copy_rows(session, AvailabilitySpan.__table__, columns, rows)  # type: ignore[arg-type]


def _clipped(since_bucket: int, until_bucket: int) -> tuple[sa.ColumnElement[int], ...]:
    s = AvailabilitySpan
    start = sa.case((s.start_bucket < since_bucket, since_bucket), else_=s.start_bucket)
    end = sa.case((s.end_bucket > until_bucket, until_bucket), else_=s.end_bucket)
    return start, end


def _overlaps(since_bucket: int, until_bucket: int) -> sa.ColumnElement[bool]:
    s = AvailabilitySpan
    return sa.and_(s.end_bucket > since_bucket, s.start_bucket < until_bucket)


async def spans_in_window(
    session: AsyncSession, since_bucket: int, until_bucket: int
) -> list[SpanRow]:
    """Runs clipped to ``[since_bucket, until_bucket)``, by worker then start."""
    start, end = _clipped(since_bucket, until_bucket)
    stmt = (
        sa.select(AvailabilitySpan.worker_id, start, end)
        .where(_overlaps(since_bucket, until_bucket))
        .order_by(AvailabilitySpan.worker_id, AvailabilitySpan.start_bucket)
    )
    return [SpanRow(*row) for row in (await session.execute(stmt))]


async def online_buckets(
    session: AsyncSession, since_bucket: int, until_bucket: int
) -> dict[int, int]:
    """worker id → number of online buckets in ``[since_bucket, until_bucket)``, summed in SQL.

    Workers never online in the window are absent (their count is 0).
    """
    start, end = _clipped(since_bucket, until_bucket)
    stmt = (
        sa.select(AvailabilitySpan.worker_id, sa.func.sum(end - start))
        .where(_overlaps(since_bucket, until_bucket))
        .group_by(AvailabilitySpan.worker_id)
    )
    return {wid: int(n) for wid, n in (await session.execute(stmt))}


async def prune_availability(session: AsyncSession, before_bucket: int) -> int:
    """Delete runs that ended before ``before_bucket``; returns how many."""
    result = await session.execute(
        sa.delete(AvailabilitySpan).where(AvailabilitySpan.end_bucket <= before_bucket)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
