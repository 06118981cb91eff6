"""The worker's side of artifacts: after a job ends, send the files the gateway will keep.

What is sent is decided by ``protocol.artifacts.admit`` over the job's own listing and the
limit in its request, so nothing the gateway would refuse leaves the worker. Files are
opened without following symlinks (the artifacts dir is the customer's) and never read past
the size they were listed with; a file that changed or vanished since the listing is sent as
it now is, and the gateway, which checks each sha256, rejects it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from byteleap.net.messages import ArtifactChunk, JobRequest
from byteleap.protocol.artifacts import CHUNK_BYTES, admit
from byteleap.protocol.execution import ArtifactInfo, ExecutionResult

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]


async def send_artifacts(
    job: JobRequest, result: ExecutionResult, workdir: Path, send: Send
) -> int:
    """Send the job's admitted artifacts as chunks; returns how many files went out whole."""
    if job.artifact_limit_bytes is None or not result.artifacts:
        return 0
    base = workdir / job.spec.artifacts_dir
    sent = 0
    for info in admit(result.artifacts, job.artifact_limit_bytes).accepted:
        try:
            sent += await _send_file(job.job_id, base, info, send)
        except OSError as exc:  # the gateway records it as not uploaded
            log.warning("artifact not sent", extra={"job": job.job_id, "why": repr(exc)})
    return sent


async def _send_file(job_id: str, base: Path, info: ArtifactInfo, send: Send) -> int:
    fd = await asyncio.to_thread(_open_regular, base / info.path)
    with os.fdopen(fd, "rb") as handle:
        offset = 0
        while True:
            want = min(CHUNK_BYTES, info.size - offset)
            data = await asyncio.to_thread(handle.read, want) if want > 0 else b""
            last = len(data) < CHUNK_BYTES or offset + len(data) >= info.size
            chunk = ArtifactChunk(
                job_id=job_id, path=info.path, offset=offset, data=data, last=last
            )
            await send(chunk.model_dump_json())
            offset += len(data)
            if last:
                return 1


def _open_regular(path: Path) -> int:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path.name} is no longer a regular file")
    return fd
