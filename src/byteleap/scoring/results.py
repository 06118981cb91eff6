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
    score: float  # performance × participation × availability, 0 when banned
    counted: bool  # among its miner's best K workers


@dataclass(frozen=True, slots=True)
class MinerScore:
    hotkey: str
    workers: int
    challenge_raw: float  # sum of the best K worker scores
    challenge: float  # challenge_raw / the best miner's, in [0, 1]
    lease_revenue: float
    lease: float  # lease_revenue / the best miner's, in [0, 1]
    final: float


@dataclass(frozen=True, slots=True)
class ScoreBoard:
    """Scores at ``now``; miners sorted by hotkey, workers by (miner, worker id).

    ``lease_active`` is False while no miner has lease revenue in the window; ``final`` is then
    the challenge score alone (see ``byteleap.scoring``).
    """

    now: float
    lease_active: bool
    miners: tuple[MinerScore, ...]
    workers: tuple[WorkerScore, ...]

    def final_scores(self) -> dict[str, float]:
        return {m.hotkey: m.final for m in self.miners}

    def miner(self, hotkey: str) -> MinerScore:
        for m in self.miners:
            if m.hotkey == hotkey:
                return m
        raise KeyError(hotkey)
