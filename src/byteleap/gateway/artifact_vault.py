"""The gateway's artifact store: a finished job's files, fetched from its miner, checked and
kept on the local filesystem before the job is reported finished.

Collection (`ArtifactVault.collect`) runs when the dispatcher sees a job end: it admits the
worker's listing against the per-job byte limit (``protocol.artifacts.admit``), reads each
admitted file from the miner in pieces into a temporary file, checks its size and sha256
against the listing, and moves it into place under ``<root>/<job id>/<sha256>`` — the path a
job chose never touches the gateway's filesystem. Then every file, stored or rejected with
its reason, is recorded in the store, and only after that does the dispatcher finish the
job: a gateway that restarts mid-way collects the job again (idempotent), so nothing
recorded is lost and nothing is reported before it is kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from byteleap.gateway.errors import InvalidSpec, NotFound
from byteleap.gateway.miners import MinerApi
from byteleap.net.messages import MAX_ARTIFACT_READ, ArtifactPiece
from byteleap.net.miner_client import MinerCallError
from byteleap.protocol.artifacts import (
    ArtifactListing,
    ArtifactView,
    RejectedArtifact,
    admit,
    check_artifact_path,
)
from byteleap.protocol.execution import ArtifactInfo
from byteleap.store import RecordNotFound, Store
from byteleap.store.artifact_records import (
    ArtifactRecord,
    get_artifact,
    list_artifacts,
    record_artifacts,
)

log = logging.getLogger(__name__)

DOWNLOAD_CHUNK = 1 << 20
# A piece the miner could not deliver for a passing reason (a timeout, a dropped connection, a
# 5xx) is asked for again, this many times in all, waiting 0.2 s, 0.4 s, … between: one lost
# request must not cost the tenant a file the miner still holds.
READ_ATTEMPTS = 4
_RETRY_WAIT_S = 0.2
_PASSING_REASONS = frozenset({"timeout", "unreachable", "http_error"})


class _Refused(Exception):
    """One artifact cannot be kept; the message is the reason recorded for it."""


@dataclass
class ArtifactVault:
    root: Path
    limit_bytes: int
    clock: Callable[[], float] = time.time
    read_bytes: int = MAX_ARTIFACT_READ

    def file_of(self, job_id: str, sha256: str) -> Path:
        return self.root / job_id / sha256

    async def collect(
        self,
        store: Store,
        miner: MinerApi,
        job_id: str,
        miner_job_id: str,
        listing: list[ArtifactInfo],
    ) -> list[RejectedArtifact]:
        """Fetch, check, keep and record the job's artifacts; returns the rejected ones."""
        admission = admit(listing, self.limit_bytes)
        rejected = list(admission.rejected)
        stored: list[ArtifactInfo] = []
        for info in admission.accepted:
            try:
                await self._fetch(miner, job_id, miner_job_id, info)
            except _Refused as exc:
                rejected.append(RejectedArtifact(path=info.path, size=info.size, reason=str(exc)))
                continue
            stored.append(info)
        now = self.clock()
        records = [ArtifactRecord(job_id, a.path, a.size, a.sha256, None, now) for a in stored] + [
            ArtifactRecord(job_id, r.path, r.size, "", r.reason, now) for r in rejected
        ]
        async with store.session() as s:
            await record_artifacts(s, records)
        with contextlib.suppress(MinerCallError):  # the miner forgets them in time anyway
            await miner.drop_artifacts(miner_job_id)
        return rejected

    async def _fetch(
        self, miner: MinerApi, job_id: str, miner_job_id: str, info: ArtifactInfo
    ) -> None:
        final = self.file_of(job_id, info.sha256)
        if await asyncio.to_thread(_holds, final, info.size):
            return  # the same content, kept by an earlier (interrupted) collection
        await asyncio.to_thread(final.parent.mkdir, parents=True, exist_ok=True)
        partial = final.parent / f".partial-{secrets.token_hex(8)}"
        try:
            out = await asyncio.to_thread(open, partial, "wb")
            try:
                size, sha256 = await self._receive(miner, miner_job_id, info, out)
                await asyncio.to_thread(os.fsync, out.fileno())
            finally:
                out.close()
            if size != info.size:
                raise _Refused(f"{size} bytes received, {info.size} listed")
            if sha256 != info.sha256:
                raise _Refused("sha256 does not match the listing")
            await asyncio.to_thread(os.replace, partial, final)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    async def _receive(
        self, miner: MinerApi, miner_job_id: str, info: ArtifactInfo, out: BinaryIO
    ) -> tuple[int, str]:
        """Read the artifact piece by piece into ``out``; (bytes, sha256 hex)."""
        digest = hashlib.sha256()
        offset = 0
        while True:
            piece = await self._read_piece(miner, miner_job_id, info.path, offset)
            if piece.path != info.path or piece.offset != offset:
                raise _Refused("the miner answered for another piece")
            if offset + len(piece.data) > info.size:
                raise _Refused(f"larger than the {info.size} bytes listed")
            digest.update(piece.data)
            await asyncio.to_thread(out.write, piece.data)
            offset += len(piece.data)
            if piece.eof:
                return offset, digest.hexdigest()
            if not piece.data:
                raise _Refused("the miner sent an empty piece before the end")

    async def _read_piece(
        self, miner: MinerApi, miner_job_id: str, path: str, offset: int
    ) -> ArtifactPiece:
        for attempt in range(READ_ATTEMPTS):
            try:
                return await miner.read_artifact(
                    miner_job_id, path, offset=offset, length=self.read_bytes
                )
            except MinerCallError as exc:
                passing = exc.reason in _PASSING_REASONS or (exc.status or 0) >= 500
                if not passing or attempt == READ_ATTEMPTS - 1:
                    raise _Refused(f"not received from the miner: {exc}") from None
                log.info(
                    "artifact read failed; asking again",
                    extra={"job": miner_job_id, "path": path, "offset": offset, "why": exc.reason},
                )
                await asyncio.sleep(_RETRY_WAIT_S * 2**attempt)
        raise AssertionError("unreachable")  # the loop returns or raises

    # -- what tenants read (ownership is checked by the caller) --------------------------

    async def listing(self, store: Store, job_id: str) -> ArtifactListing:
        async with store.session() as s:
            records = await list_artifacts(s, job_id)
        return ArtifactListing(
            job_id=job_id,
            artifacts=[
                ArtifactView(path=r.path, size=r.size, sha256=r.sha256) for r in records if r.stored
            ],
            rejected=[
                RejectedArtifact(path=r.path, size=r.size, reason=r.rejected or "")
                for r in records
                if not r.stored
            ],
        )

    async def open(
        self, store: Store, job_id: str, path: str
    ) -> tuple[ArtifactView, AsyncIterator[bytes]]:
        try:
            check_artifact_path(path)
        except ValueError as exc:
            raise InvalidSpec(str(exc), field="path") from None
        try:
            async with store.session() as s:
                record = await get_artifact(s, job_id, path)
        except RecordNotFound:
            raise NotFound(f"no artifact {path!r} of job {job_id}") from None
        view = ArtifactView(path=record.path, size=record.size, sha256=record.sha256)
        file = self.file_of(job_id, record.sha256)
        try:
            handle = await asyncio.to_thread(open, file, "rb")
        except FileNotFoundError:
            log.error("artifact recorded but missing", extra={"job": job_id, "path": path})
            raise NotFound(f"artifact {path!r} of job {job_id} is gone") from None
        return view, _chunks(handle)


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while data := await asyncio.to_thread(handle.read, DOWNLOAD_CHUNK):
            yield data
    finally:
        handle.close()


def _holds(path: Path, size: int) -> bool:
    try:
        return path.stat().st_size == size
    except FileNotFoundError:
        return False
