"""The work dir of one execution: inputs written in before the start, artifacts read out after.

Paths come from the spec already normalised and relative (``safe_relative_path``); the files are
still opened with ``O_NOFOLLOW`` and checked to resolve inside the work dir, because after the
program ran, anything in the work dir — including symlinks to the worker's own files — is
written by the customer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

from byteleap.protocol.execution import FEATURE_URL_INPUTS, ArtifactInfo, ExecutionSpec
from byteleap.worker.executors.errors import CorruptInputError, UnsupportedError, WorkdirError

logger = logging.getLogger(__name__)

#: More files than this in the artifacts dir are not listed (and not hashed).
MAX_ARTIFACTS = 10_000
_CHUNK = 1 << 20


def prepare_workdir(
    spec: ExecutionSpec, workdir: Path, fetched: Mapping[str, Path] | None = None
) -> Path:
    """Create ``workdir`` (or accept it empty), write the inputs and the artifacts dir.

    ``fetched`` holds each URL input's cached file (``worker.input_cache``), by input path: it
    is copied, never linked, so the job cannot write into the cache that other jobs read.
    Returns the work dir as an absolute, resolved path.
    """
    fetched = fetched or {}
    missing = sorted(p for p, file in spec.inputs.items() if file.is_url and p not in fetched)
    if missing:  # an adapter that fetches nothing: another worker's may run the job
        raise UnsupportedError(
            f"url input {missing[0]!r} was not fetched", feature=FEATURE_URL_INPUTS
        )
    try:
        workdir.mkdir(parents=True, exist_ok=True)
        if any(workdir.iterdir()):
            raise WorkdirError(f"work dir {workdir} is not empty", workdir=str(workdir))
    except (FileExistsError, NotADirectoryError) as exc:
        raise WorkdirError(f"work dir {workdir} is not a directory", workdir=str(workdir)) from exc
    root = workdir.resolve()
    for relative, file in spec.inputs.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.parent.resolve().is_relative_to(root):
            raise WorkdirError(f"input {relative!r} resolves outside the work dir")
        mode = 0o755 if file.executable else 0o644
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
        with os.fdopen(fd, "wb") as out:
            if file.sha256 is not None:
                _copy_checked(fetched[relative], out, file.sha256, relative)
            else:
                out.write(file.data())
    (root / spec.artifacts_dir).mkdir(parents=True, exist_ok=True)
    return root


def _copy_checked(cached: Path, out: BinaryIO, sha256: str, relative: str) -> None:
    """Copy a cached input, hashing it on the way: a cache file changed since it was fetched
    (a process job runs as the worker's user and could reach it) is not handed on."""
    digest = hashlib.sha256()
    with cached.open("rb") as source:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != sha256:
        raise CorruptInputError(
            f"the cached copy of input {relative!r} no longer has its sha256",
            sha256=sha256,
            path=str(cached),
        )


def collect_artifacts(workdir: Path, artifacts_dir: str) -> list[ArtifactInfo]:
    """Every regular file under the artifacts dir (symlinks skipped), sorted by path."""
    root = workdir.resolve()
    base = workdir / artifacts_dir
    if base.is_symlink() or not base.is_dir() or not base.resolve().is_relative_to(root):
        return []
    found: list[ArtifactInfo] = []
    for dirpath, _dirnames, filenames in os.walk(base):  # never descends through symlinks
        for name in filenames:
            if len(found) >= MAX_ARTIFACTS:
                logger.warning("artifact listing truncated", extra={"limit": MAX_ARTIFACTS})
                return sorted(found, key=lambda a: a.path)
            path = Path(dirpath) / name
            info = _describe(path, path.relative_to(base).as_posix())
            if info is not None:
                found.append(info)
    return sorted(found, key=lambda a: a.path)


def _describe(path: Path, relative: str) -> ArtifactInfo | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None  # a symlink, or gone since the walk
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None  # a FIFO or device must not block or leak the worker's view
        digest = hashlib.sha256()
        size = 0
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return ArtifactInfo(path=relative, size=size, sha256=digest.hexdigest())
