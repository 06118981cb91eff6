"""What scoring returns: one row per worker and per miner, enough to print `validator scores`."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["MinerScore", "ScoreBoard", "WorkerScore"]


@dataclass(frozen=True, slots=True)
class WorkerScore:
    miner_hotkey: str
    worker_id: str
    successes: int
    failures: int
    wrong_answers: int
    participation: float
    performance: float  # flop/s, lower-tail mean of verified throughput
    availability: float
    ip_changes: int
    banned: bool
    score: float  # performance × participation × availability, 0 when banned or flagged
    counted: bool  # among its miner's best K workers
    flag: str | None = None  # why its identity is in doubt (shared_key, shared_gpu, ...)
    lease_revenue: float = 0.0  # lease revenue in the window that counted


@dataclass(frozen=True, slots=True)
class MinerScore:
    hotkey: str
    workers: int
    challenge_raw: float  # sum of the best K worker scores
    challenge: float  # challenge_raw / the best miner's, in [0, 1]
    lease_revenue: float  # verified lease revenue in the window that counted
    lease: float  # lease_revenue / the network's counted revenue R, in [0, 1]
    final: float  # share / the best miner's share, in [0, 1]
    # lease_share × lease + (1 − lease_share) × challenge_raw / all miners' challenge_raw:
    # this miner's part of the weights (they sum to 1 while anyone has a challenge score)
    share: float = 0.0
    lease_rejected: float = 0.0  # revenue in the window that did not count (see scoring.leases)


@dataclass(frozen=True, slots=True)
class ScoreBoard:
    """Scores at ``now``; miners sorted by hotkey, workers by (miner, worker id).

    ``lease_share`` is the part of the weights that follows lease revenue, min(0.7, R / V) for
    the network's counted revenue ``lease_revenue`` (R); ``lease_active`` is R > 0. With no
    counted revenue ``final`` is the challenge score alone (see ``byteleap.scoring``).
    """

    now: float
    lease_active: bool
    miners: tuple[MinerScore, ...]
    workers: tuple[WorkerScore, ...]
    lease_share: float = 0.0
    lease_revenue: float = 0.0

    def final_scores(self) -> dict[str, float]:
        return {m.hotkey: m.final for m in self.miners}

    def miner(self, hotkey: str) -> MinerScore:
        for m in self.miners:
            if m.hotkey == hotkey:
                return m
        raise KeyError(hotkey)
