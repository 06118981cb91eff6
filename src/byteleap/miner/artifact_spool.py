"""The miner's spool of job artifacts: what workers sent after their jobs ended, kept on disk
until the gateway has read it (or the job is forgotten).

The worker is not trusted: every chunk must name a job running on that worker (checked by
the caller), a clean relative path and the offset the file has reached; the bytes of a job
never exceed the limit its request gave. A file that breaks a rule is dropped and remembered
as rejected with the reason, which the gateway reads back as a 404 detail. Spooled files are
named by the sha256 of their path, so no path a worker sends ever reaches the filesystem.
Like the job book, the spool is scratch: a miner restart loses it (in a temporary
directory removed at exit).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from byteleap.miner.errors import UnknownJob
from byteleap.net.messages import ArtifactChunk, ArtifactPiece, JobRequest
from byteleap.protocol.artifacts import MAX_ARTIFACT_FILES, over_limit
from byteleap.protocol.execution import safe_relative_path

log = logging.getLogger(__name__)


class UnknownArtifact(UnknownJob):
    """No such artifact here (never sent, rejected, or not complete); detail says which."""

    reason = "unknown_artifact"


@dataclass
class _SpoolFile:
    name: str
    size: int = 0
    complete: bool = False
    rejected: str | None = None


@dataclass
class _JobSpool:
    limit: int
    directory: Path
    total: int = 0
    files: dict[str, _SpoolFile] = field(default_factory=dict)


class ArtifactSpool:
    def __init__(self, root: Path | None = None) -> None:
        self._root = root
        self._temporary: tempfile.TemporaryDirectory[str] | None = None
        self._jobs: dict[str, _JobSpool] = {}

    def _base(self) -> Path:
        if self._root is None:
            self._temporary = tempfile.TemporaryDirectory(prefix="byteleap-artifacts-")
            self._root = Path(self._temporary.name)
        return self._root

    def receive(self, request: JobRequest, chunk: ArtifactChunk) -> None:
        """Take one chunk of a running job's artifact; a bad one only costs its own file."""
        if request.artifact_limit_bytes is None:
            return  # the gateway asked for no artifacts
        job = self._jobs.get(chunk.job_id)
        if job is None:
            job = _JobSpool(request.artifact_limit_bytes, self._base() / _name(chunk.job_id))
            job.directory.mkdir(parents=True, exist_ok=True)
            self._jobs[chunk.job_id] = job
        spooled = job.files.get(chunk.path)
        if spooled is None:
            spooled = _SpoolFile(_name(chunk.path))
            job.files[chunk.path] = spooled
            spooled.rejected = _bad_path(chunk.path, len(job.files))
        if spooled.rejected is not None:
            return
        why = self._why_not(job, spooled, chunk)
        if why is not None:
            self._reject(job, spooled, why, chunk.job_id, chunk.path)
            return
        with open(job.directory / spooled.name, "ab") as out:
            out.write(chunk.data)
        spooled.size += len(chunk.data)
        job.total += len(chunk.data)
        spooled.complete = chunk.last

    @staticmethod
    def _why_not(job: _JobSpool, spooled: _SpoolFile, chunk: ArtifactChunk) -> str | None:
        if spooled.complete:
            return "sent twice"
        if chunk.offset != spooled.size:
            return f"chunk at offset {chunk.offset}, expected {spooled.size}"
        if job.total + len(chunk.data) > job.limit:
            return over_limit(job.limit)
        return None

    def _reject(
        self, job: _JobSpool, spooled: _SpoolFile, why: str, job_id: str, path: str
    ) -> None:
        log.warning("artifact rejected", extra={"job": job_id, "path": path, "why": why})
        job.total -= spooled.size
        spooled.rejected, spooled.size, spooled.complete = why, 0, False
        with contextlib.suppress(FileNotFoundError):
            os.unlink(job.directory / spooled.name)

    def read(self, job_id: str, path: str, offset: int, length: int) -> ArtifactPiece:
        job = self._jobs.get(job_id)
        spooled = job.files.get(path) if job is not None else None
        if job is None or spooled is None:
            raise UnknownArtifact(f"artifact {path!r} of job {job_id} was not sent")
        if spooled.rejected is not None:
            raise UnknownArtifact(f"artifact {path!r} was rejected: {spooled.rejected}")
        if not spooled.complete:
            raise UnknownArtifact(f"artifact {path!r} arrived incomplete")
        with open(job.directory / spooled.name, "rb") as handle:
            handle.seek(offset)
            data = handle.read(length)
        eof = offset + len(data) >= spooled.size
        return ArtifactPiece(path=path, offset=offset, data=data, eof=eof)

    def drop(self, job_id: str) -> None:
        job = self._jobs.pop(job_id, None)
        if job is None:
            return
        for spooled in job.files.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(job.directory / spooled.name)
        with contextlib.suppress(OSError):
            job.directory.rmdir()

    def spooled_bytes(self, job_id: str) -> int:
        job = self._jobs.get(job_id)
        return 0 if job is None else job.total

    def close(self) -> None:
        for job_id in list(self._jobs):
            self.drop(job_id)
        if self._temporary is not None:
            self._temporary.cleanup()


def _name(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _bad_path(path: str, files: int) -> str | None:
    if files > MAX_ARTIFACT_FILES:
        return f"more than {MAX_ARTIFACT_FILES} artifact files"
    try:
        if safe_relative_path(path) != path:
            return "path is not in normal form"
    except ValueError:
        return "path leaves the artifacts dir"
    return None
