"""The gateway's checkpoints: the latest complete checkpoint set of each running job, read
from its miner when the miner says it holds a newer one, and given back to the job's next
attempt as inputs written into its checkpoint dir before its program starts.

A set is kept as one file, ``<root>/<job id>.json`` (the ``CheckpointSet`` as the miner
sent it, checked whole when parsed), written to a temporary name and renamed: a set is
replaced whole, never half, and only the latest one is kept. A set is never given to any
job but its own: the file is found by the job's id alone, and only the dispatcher, starting
that job's next attempt, asks for it. The set is removed when the job ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from byteleap.net.messages import CheckpointSet
from byteleap.protocol.execution import InputFile

log = logging.getLogger(__name__)

# (attempt, seq): which set a job's kept file is, so a newer one (a later attempt's too,
# whose seq starts again at 1) replaces it
Version = tuple[int, int]


@dataclass
class CheckpointKeeper:
    root: Path
    # job id -> the version of its kept set (what saves reading the file on every pass)
    versions: dict[str, Version] = field(default_factory=dict)

    def _file(self, job_id: str) -> Path:
        # A job id is [A-Za-z0-9_-] (``JobId``): it cannot name a path outside the root.
        return self.root / f"{job_id}.json"

    def is_newer(self, job_id: str, version: Version) -> bool:
        kept = self.versions.get(job_id)
        return kept is None or version > kept

    async def keep(self, job_id: str, attempt: int, checkpoint: CheckpointSet) -> bool:
        """Keep ``checkpoint`` as the job's set if it is newer than the one kept."""
        version = (attempt, checkpoint.seq)
        if not self.is_newer(job_id, version):
            return False
        await asyncio.to_thread(self._write, job_id, checkpoint)
        self.versions[job_id] = version
        log.info("checkpoint kept", extra={"job": job_id, "attempt": attempt, "seq": version[1]})
        return True

    def _write(self, job_id: str, checkpoint: CheckpointSet) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        final = self._file(job_id)
        partial = self.root / f".partial-{secrets.token_hex(8)}"
        try:
            with open(partial, "w", encoding="utf-8") as out:
                out.write(checkpoint.model_dump_json())
                out.flush()
                os.fsync(out.fileno())
            os.replace(partial, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    async def latest(self, job_id: str) -> CheckpointSet | None:
        try:
            text = await asyncio.to_thread(self._file(job_id).read_text, encoding="utf-8")
        except FileNotFoundError:
            return None
        try:
            return CheckpointSet.model_validate_json(text)
        except ValueError:  # damaged on disk: no checkpoint beats a wrong one
            log.error("kept checkpoint unreadable", extra={"job": job_id})
            return None

    async def inputs_for(self, job_id: str, checkpoint_dir: str) -> dict[str, InputFile]:
        """The job's latest set as inputs inside ``checkpoint_dir`` (none: nothing kept)."""
        checkpoint = await self.latest(job_id)
        if checkpoint is None:
            return {}
        base = PurePosixPath(checkpoint_dir)
        return {(base / f.path).as_posix(): InputFile.from_bytes(f.data) for f in checkpoint.files}

    async def drop(self, job_id: str) -> None:
        self.versions.pop(job_id, None)
        with contextlib.suppress(FileNotFoundError):
            await asyncio.to_thread(self._file(job_id).unlink)
