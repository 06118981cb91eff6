"""Every tunable number of the scoring rules, in one validated model (DESIGN §4)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["ScoringParams"]


class ScoringParams(BaseModel):
    """Scoring parameters; the defaults are the design's (param) values."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window_min: float = Field(default=180.0, gt=0)
    round_interval_s: float = Field(default=240.0, gt=0)
    # Rounds slip and a worker may be skipped when its miner has more than the per-round cap, so
    # full participation is reached a little below one success per round.
    expected_success_fraction: float = Field(default=0.9, gt=0, le=1)
    failure_weight: float = Field(default=1.0, ge=0)
    throughput_quantile: float = Field(default=0.5, gt=0, le=1)
    bucket_s: float = Field(default=300.0, gt=0)
    availability_hours: float = Field(default=169.0, gt=0)
    ip_change_factor: float = Field(default=0.5, ge=0, le=1)
    ip_changes_to_zero: int = Field(default=3, ge=1)
    wrong_answer_ban_min: float = Field(default=180.0, ge=0)
    top_k_workers: int = Field(default=100, ge=1)
    lease_window_min: float = Field(default=180.0, gt=0)
    # At full ramp the lease share is lease_weight / (lease_weight + challenge_weight).
    lease_weight: float = Field(default=0.7, ge=0)
    challenge_weight: float = Field(default=0.3, ge=0)
    # V: what the miners' emission over one lease window is worth in the receipts' currency.
    # The lease share is min(max_lease_share, R / V) for the network's verified revenue R, so
    # weight bought by renting one's own worker costs at least what it earns. An operator
    # setting (docs/scoring.md says how to derive it); too high only slows the ramp, too low
    # makes washing pay.
    lease_emission_value: float = Field(default=1.0, gt=0)
    # Revenue counts only if the worker passed a challenge at most this long before its lease
    # began (or during it). 15 rounds at 240 s: an idle honest worker passes every round.
    lease_challenge_window_min: float = Field(default=60.0, gt=0)

    @model_validator(mode="after")
    def _weights_not_both_zero(self) -> ScoringParams:
        if self.lease_weight + self.challenge_weight <= 0:
            raise ValueError("lease_weight + challenge_weight must be > 0")
        return self

    @property
    def max_lease_share(self) -> float:
        """The lease share once verified revenue reaches ``max_lease_share`` × V (0.7)."""
        return self.lease_weight / (self.lease_weight + self.challenge_weight)

    @property
    def window_s(self) -> float:
        return self.window_min * 60.0

    @property
    def longest_window_s(self) -> float:
        """The furthest back any scoring rule reads (availability's 169 h by default): stored
        history younger than this must never be pruned."""
        return max(
            self.window_s,
            self.availability_hours * 3600.0,
            self.lease_window_min * 60.0,
            self.wrong_answer_ban_min * 60.0,
            self.lease_challenge_window_min * 60.0,
        )

    @property
    def expected_successes(self) -> float:
        """Verified successes in the window that earn full participation (p = 1)."""
        return self.window_s / self.round_interval_s * self.expected_success_fraction

    @property
    def availability_buckets(self) -> int:
        """How many buckets the availability window holds (2028 for 169 h of 5 minutes)."""
        return max(1, round(self.availability_hours * 3600.0 / self.bucket_s))
