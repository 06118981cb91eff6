"""Which of a job's artifacts travel to the gateway, and why the others do not. Pure, no I/O.

A finished job lists every file in its artifacts dir with its size and sha256
(``ArtifactInfo``). The worker, the miner and the gateway each apply the same rule to that
listing, so they agree on what is sent without talking about it: files are taken in path
order while the running total stays within the job's byte limit and the file count within
``MAX_ARTIFACT_FILES``; every other file is rejected with its reason. The worker is not
trusted to follow the rule — the miner enforces the limit on what arrives, and the gateway
checks every byte against the listed sha256 — but an honest worker never sends a byte the
gateway will throw away.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from byteleap.protocol.execution import ArtifactInfo, safe_relative_path

#: Bytes of one artifact per message on the wire (base64 makes it ~1.4 MiB of JSON).
CHUNK_BYTES = 1 << 20
MAX_ARTIFACT_FILES = 1000
#: Paths longer than this are rejected (the store keeps up to 1024 characters).
MAX_PATH_CHARS = 1024


class RejectedArtifact(BaseModel):
    """A file the job left that the gateway did not keep, and why."""

    model_config = ConfigDict(frozen=True)

    path: str
    size: int = Field(ge=0)
    reason: str


@dataclass(frozen=True)
class Admission:
    accepted: list[ArtifactInfo]
    rejected: list[RejectedArtifact]


def over_limit(limit_bytes: int) -> str:
    return f"over the job's artifact limit of {limit_bytes} bytes"


def admit(
    listing: Iterable[ArtifactInfo], limit_bytes: int, max_files: int = MAX_ARTIFACT_FILES
) -> Admission:
    """Split ``listing`` into what is sent (in path order, within both limits) and the rest."""
    accepted: list[ArtifactInfo] = []
    rejected: list[RejectedArtifact] = []
    total = 0
    seen: set[str] = set()
    for info in sorted(listing, key=lambda a: a.path):
        reason = _unusable(info, seen)
        if reason is None and len(accepted) >= max_files:
            reason = f"more than {max_files} artifact files"
        if reason is None and total + info.size > limit_bytes:
            reason = over_limit(limit_bytes)
        if reason is not None:
            rejected.append(RejectedArtifact(path=info.path, size=info.size, reason=reason))
            continue
        seen.add(info.path)
        total += info.size
        accepted.append(info)
    return Admission(accepted, rejected)


def _unusable(info: ArtifactInfo, seen: set[str]) -> str | None:
    if len(info.path) > MAX_PATH_CHARS:
        return f"path longer than {MAX_PATH_CHARS} characters"
    try:
        if safe_relative_path(info.path) != info.path:
            return "path is not in normal form"
    except ValueError:
        return "path leaves the artifacts dir"
    if info.path in seen:
        return "listed twice"
    if len(info.sha256) != 64 or any(c not in "0123456789abcdef" for c in info.sha256):
        return "sha256 is not 64 hex digits"
    return None


class ArtifactView(BaseModel):
    """A stored artifact as its tenant sees it."""

    path: str
    size: int
    sha256: str


class ArtifactListing(BaseModel):
    """A job's artifacts: those the gateway stored, and those it rejected with why."""

    job_id: str
    artifacts: list[ArtifactView]
    rejected: list[RejectedArtifact]


def check_artifact_path(path: str) -> str:
    """``path`` if it names a file inside an artifacts dir as stored; ValueError otherwise."""
    if len(path) > MAX_PATH_CHARS or safe_relative_path(path) != path:
        raise ValueError(f"{path!r} is not an artifact path (relative, normalised, inside)")
    return path
