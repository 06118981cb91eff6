"""One GPU, one worker: identities reported under two workers or two hotkeys flag all of them.

A worker is known by its enrolled key and by the uuids of the GPUs it reports. A miner that
lists one box under many workers, or two hotkeys that list the same box, report the same key or
the same GPU uuid more than once. Every worker that shares one is flagged, not just the later
copy: which one is "real" cannot be told from the outside, and flagging all of them makes the
duplicate worth nothing to anyone until it is gone. Pure.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

WorkerRef = tuple[str, str]
"""``(miner_hotkey, worker_id)``."""


@dataclass(frozen=True, slots=True)
class WorkerIdentity:
    miner_hotkey: str
    worker_id: str
    public_key: str
    gpu_uuids: tuple[str, ...] = ()

    @property
    def ref(self) -> WorkerRef:
        return (self.miner_hotkey, self.worker_id)


def duplicated_workers(identities: Iterable[WorkerIdentity]) -> dict[WorkerRef, str]:
    """Each flagged worker and why (``shared_key`` or ``shared_gpu``); unflagged ones are absent.

    The same worker listed twice (one listing re-read) is not a duplicate of itself.
    """
    holders: dict[tuple[str, str], set[WorkerRef]] = defaultdict(set)
    for identity in identities:
        if identity.public_key:
            holders[("shared_key", identity.public_key.lower())].add(identity.ref)
        for uuid in identity.gpu_uuids:
            if uuid.strip():
                holders[("shared_gpu", uuid.strip().lower())].add(identity.ref)
    flagged: dict[WorkerRef, str] = {}
    for (reason, _), refs in sorted(holders.items()):
        if len(refs) > 1:
            for ref in refs:
                flagged.setdefault(ref, reason)
    return flagged
