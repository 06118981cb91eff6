"""The worker's side of checkpoints: while a job runs, send its checkpoint dir whenever it
changed, as one whole set (``net.messages.CheckpointSet``), and once more when it ends.

The dir is the customer's: files are opened without following symlinks, names starting with
'.' are left out (a program writes ``.tmp`` and renames, so the half-written file is never
sent), and a file that changed while it was read waits for the next look. A set over
``MAX_CHECKPOINT_BYTES`` or ``MAX_CHECKPOINT_FILES`` is not sent (logged once): the gateway
would refuse it, and the last set that fitted stays the one a retry gets.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import stat
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from byteleap.net.messages import CheckpointFile, CheckpointSet
from byteleap.protocol.checkpoints import (
    CHECKPOINT_POLL_S,
    MAX_CHECKPOINT_BYTES,
    MAX_CHECKPOINT_FILES,
)
from byteleap.protocol.execution import ExecutionSpec

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]
# path -> (size, mtime_ns, inode): what tells a changed file apart without reading it
Snapshot = dict[str, tuple[int, int, int]]


class _TooLarge(Exception):
    pass


@dataclass
class CheckpointWatcher:
    job_id: str
    base: Path  # the checkpoint dir inside the job's work dir
    send: Send
    every_s: float = CHECKPOINT_POLL_S
    seq: int = 0  # the last set sent
    sent: Snapshot = field(default_factory=dict)
    # path -> sha256 of the set a retry restored: the same set is not sent back
    restored: dict[str, str] = field(default_factory=dict)
    _warned: bool = False

    async def watch(self) -> None:
        """Look every ``every_s`` until cancelled. A send that fails (a link that dropped)
        costs only that look: the job goes on, and the look at its end sends again."""
        while True:
            await asyncio.sleep(self.every_s)
            try:
                await self.look()
            except Exception as exc:
                log.warning("checkpoint send failed", extra={"job": self.job_id, "why": repr(exc)})

    async def look(self) -> bool:
        """Send the dir if it changed since the last set sent; True when one was sent."""
        try:
            made = await asyncio.to_thread(self._read_set)
        except _TooLarge as exc:
            if not self._warned:
                self._warned = True
                log.warning("checkpoint not sent", extra={"job": self.job_id, "why": str(exc)})
            return False
        except OSError as exc:  # vanished or changed while read: the next look
            log.debug("checkpoint not read", extra={"job": self.job_id, "why": repr(exc)})
            return False
        if made is None:
            return False
        snapshot, files = made
        if {f.path: f.sha256 for f in files} == self.restored:
            self.sent = snapshot
            return False
        checkpoint = CheckpointSet(job_id=self.job_id, seq=self.seq + 1, files=files)
        await self.send(checkpoint.model_dump_json())
        self.seq, self.sent = checkpoint.seq, snapshot
        return True

    def _read_set(self) -> tuple[Snapshot, list[CheckpointFile]] | None:
        before = checkpoint_snapshot(self.base)
        if not before or before == self.sent:
            return None
        if len(before) > MAX_CHECKPOINT_FILES:
            raise _TooLarge(f"{len(before)} files, at most {MAX_CHECKPOINT_FILES}")
        total = sum(size for size, _, _ in before.values())
        if total > MAX_CHECKPOINT_BYTES:
            raise _TooLarge(f"{total} bytes, at most {MAX_CHECKPOINT_BYTES}")
        files = []
        for path, (size, _, _) in sorted(before.items()):
            data = _read_regular(self.base / path, size)
            digest = hashlib.sha256(data).hexdigest()
            files.append(CheckpointFile(path=path, size=len(data), sha256=digest, data=data))
        if checkpoint_snapshot(self.base) != before:
            return None  # written to while read: a set of one moment only
        return before, files


def checkpoint_snapshot(base: Path) -> Snapshot:
    found: Snapshot = {}
    if not base.is_dir() or base.is_symlink():
        return found
    for root, dirs, names in os.walk(base):  # never follows a symlinked dir
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            if name.startswith("."):
                continue
            full = Path(root) / name
            try:
                info = full.lstat()
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                rel = full.relative_to(base).as_posix()
                found[rel] = (info.st_size, info.st_mtime_ns, info.st_ino)
    return found


def _read_regular(path: Path, size: int) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise OSError(f"{path.name} is no longer a regular file")
        return handle.read(size + 1)  # one more: a file that grew shows as changed


def restored_checkpoint(spec: ExecutionSpec) -> dict[str, str]:
    """path in the checkpoint dir -> sha256 of each file a retry restored there (as inputs)."""
    if spec.checkpoint_dir is None:
        return {}
    base = PurePosixPath(spec.checkpoint_dir)
    return {
        PurePosixPath(path).relative_to(base).as_posix(): hashlib.sha256(file.data()).hexdigest()
        for path, file in spec.inputs.items()
        if base in PurePosixPath(path).parents and not file.is_url
    }
