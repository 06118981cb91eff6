"""The gateway's record of job artifacts: each file a job left, stored or rejected (and why).

The bytes themselves live on the gateway's filesystem (``gateway.artifact_vault``); this
table is what makes them the job's. Recording is idempotent per ``(job, path)``: a gateway
that restarted while collecting a job's artifacts records them again without a conflict.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.store.errors import RecordNotFound
from byteleap.store.models import JobArtifact


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    job_id: str
    path: str
    size: int
    sha256: str
    rejected: str | None  # None: stored; else why not
    recorded_at: float

    @property
    def stored(self) -> bool:
        return self.rejected is None


_COLUMNS = [getattr(JobArtifact, f.name) for f in fields(ArtifactRecord)]


async def record_artifacts(s: AsyncSession, records: Iterable[ArtifactRecord]) -> None:
    """Write each record; one already there for its ``(job, path)`` is replaced."""
    rows = [{f.name: getattr(r, f.name) for f in fields(ArtifactRecord)} for r in records]
    if not rows:
        return
    dialect = s.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(JobArtifact)
    stmt = insert.values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=["job_id", "path"],
        set_={
            "size": stmt.excluded.size,
            "sha256": stmt.excluded.sha256,
            "rejected": stmt.excluded.rejected,
            "recorded_at": stmt.excluded.recorded_at,
        },
    )
    await s.execute(stmt)


async def list_artifacts(s: AsyncSession, job_id: str) -> list[ArtifactRecord]:
    """A job's artifacts, stored and rejected, by path."""
    stmt = sa.select(*_COLUMNS).where(JobArtifact.job_id == job_id).order_by(JobArtifact.path)
    return [ArtifactRecord(*row) for row in await s.execute(stmt)]


async def get_artifact(s: AsyncSession, job_id: str, path: str) -> ArtifactRecord:
    """One stored artifact; :class:`RecordNotFound` when there is none (or it was rejected)."""
    stmt = sa.select(*_COLUMNS).where(
        JobArtifact.job_id == job_id, JobArtifact.path == path, JobArtifact.rejected.is_(None)
    )
    row = (await s.execute(stmt)).first()
    if row is None:
        raise RecordNotFound(f"no artifact {path!r} of job {job_id}", entity="artifact", id=path)
    return ArtifactRecord(*row)
