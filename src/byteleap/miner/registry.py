"""The worker registry: who the workers are, what state each is in, when each was seen.

Pure state (no I/O, clock passed in). The allowed state moves are a table next to
the states; anything else raises `IllegalTransition`. `expire()` marks workers
offline after ``missed`` heartbeats; the miner calls it on a timer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from byteleap.miner.errors import IllegalTransition, UnknownWorker, WorkerUnavailable
from byteleap.net.messages import WorkerState, WorkerView
from byteleap.protocol.hardware import HardwareInventory

S = WorkerState
TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    S.IDLE: frozenset({S.CHALLENGED, S.LEASED, S.BUSY, S.OFFLINE}),
    S.CHALLENGED: frozenset({S.IDLE, S.OFFLINE}),
    S.LEASED: frozenset({S.IDLE, S.OFFLINE}),
    S.BUSY: frozenset({S.IDLE, S.OFFLINE}),
    S.OFFLINE: frozenset({S.IDLE}),
}
IP_HISTORY_LIMIT = 64


@dataclass
class WorkerEntry:
    worker_id: str
    public_key: str
    hardware: HardwareInventory
    profile: str
    state: WorkerState = S.OFFLINE
    last_seen: float = 0.0
    ip: str | None = None
    ip_history: list[tuple[str, float]] = field(default_factory=list)
    revoked: bool = False

    def view(self) -> WorkerView:
        return WorkerView(
            worker_id=self.worker_id,
            public_key=self.public_key,
            state=self.state,
            profile=self.profile,
            hardware=self.hardware,
            last_seen=self.last_seen,
            ip=self.ip,
        )


class WorkerRegistry:
    def __init__(self) -> None:
        self._workers: dict[str, WorkerEntry] = {}

    def __len__(self) -> int:
        return len(self._workers)

    def get(self, worker_id: str) -> WorkerEntry:
        entry = self._workers.get(worker_id)
        if entry is None:
            raise UnknownWorker(f"no worker {worker_id}", worker_id=worker_id)
        return entry

    def add(self, entry: WorkerEntry) -> None:
        self._workers[entry.worker_id] = entry

    def entries(self) -> list[WorkerEntry]:
        return sorted(self._workers.values(), key=lambda e: e.worker_id)

    def connect(
        self, worker_id: str, hardware: HardwareInventory, profile: str, ip: str, now: float
    ) -> bool:
        """The worker is online again; returns True when its IP changed."""
        entry = self.get(worker_id)
        if entry.revoked:
            raise WorkerUnavailable(f"worker {worker_id} is revoked", worker_id=worker_id)
        entry.hardware, entry.profile = hardware, profile
        changed = entry.ip is not None and entry.ip != ip
        if entry.ip != ip:
            entry.ip_history = [*entry.ip_history, (ip, now)][-IP_HISTORY_LIMIT:]
            entry.ip = ip
        if entry.state is S.OFFLINE:
            self.transition(worker_id, S.IDLE)
        entry.last_seen = now
        return changed

    def heartbeat(self, worker_id: str, now: float) -> None:
        self.get(worker_id).last_seen = now

    def transition(self, worker_id: str, new: WorkerState) -> None:
        entry = self.get(worker_id)
        if new is entry.state:
            return
        if new not in TRANSITIONS[entry.state]:
            raise IllegalTransition(
                f"worker {worker_id} cannot go from {entry.state} to {new}",
                worker_id=worker_id,
                current=entry.state.value,
                requested=new.value,
            )
        entry.state = new

    def disconnect(self, worker_id: str) -> None:
        self.transition(worker_id, S.OFFLINE)

    def revoke(self, worker_id: str) -> None:
        entry = self.get(worker_id)
        entry.revoked = True
        self.transition(worker_id, S.OFFLINE)

    def silent(self, now: float, heartbeat_s: float, missed: int) -> list[str]:
        """Online workers not heard from for ``missed`` heartbeats."""
        cutoff = now - heartbeat_s * missed
        return [
            e.worker_id for e in self.entries() if e.state is not S.OFFLINE and e.last_seen < cutoff
        ]

    def expire(self, now: float, heartbeat_s: float, missed: int) -> list[str]:
        """Mark offline every online worker silent for ``missed`` heartbeats."""
        lost = self.silent(now, heartbeat_s, missed)
        for worker_id in lost:
            self.disconnect(worker_id)
        return lost
