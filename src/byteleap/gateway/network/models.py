"""The public network view's answers: pydantic models, one per endpoint.

Public means: facts about miners, workers, challenges, scores and weights that anyone on the
chain could learn, plus aggregate counts of customers' jobs, leases and services by state.
No tenant names, no job ids, no challenge seeds.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ChainInfo(BaseModel):
    """What the gateway last read from the chain; null fields when it could not."""

    netuid: int | None = None
    block: int | None = None
    neurons: int | None = None
    validators: int | None = None


class ChallengeTotals(BaseModel):
    window_s: float
    passed: int = 0
    failed: int = 0  # verified wrong answers, timeouts and errors together
    wrong: int = 0  # verified wrong answers only (failed status)
    in_flight: int = 0
    abandoned: int = 0
    pass_rate: float | None = Field(default=None, description="passed ÷ (passed + failed)")


class NetworkOverview(BaseModel):
    generated_at: float
    chain: ChainInfo
    miners: int
    workers: int
    workers_online: int = Field(description="workers seen online in the current 5-min bucket")
    workers_by_state: dict[str, int]
    gpus: int
    gpus_by_model: dict[str, int]
    challenges: ChallengeTotals
    availability: float | None = Field(
        description="mean share of 5-minute buckets online per worker over availability_window_s"
    )
    availability_window_s: float
    jobs: dict[str, int]
    leases: dict[str, int]
    services: dict[str, int] | None = Field(
        description="services by state; null while this gateway's store has no services"
    )


class GpuView(BaseModel):
    model: str
    vram_mb: int


class WorkerSummary(BaseModel):
    worker_key: str
    state: str
    online: bool
    cpu_model: str | None
    cpu_cores: int | None
    ram_mb: int | None
    gpus: list[GpuView]
    passed: int
    failed: int
    availability: float | None
    mean_throughput: float | None = Field(description="mean verified FLOP/s of its passes")
    last_seen_at: int
    claimed_gpu_model: str | None = Field(
        default=None, description="its first GPU's model, as the worker reports it"
    )
    measured_gpu_class: str | None = Field(
        default=None,
        description="the fastest GPU model whose throughput band its median pass reaches",
    )
    measured_throughput: float | None = Field(
        default=None, description="median verified FLOP/s of its passes"
    )
    gpu_model_mismatch: bool | None = Field(
        default=None,
        description="its median pass lies outside the claimed model's band (or the model is "
        "unknown); null without a GPU or a pass",
    )


class MinerSummary(BaseModel):
    hotkey: str
    uid: int | None
    axon: str | None
    workers: int
    workers_online: int
    gpus: int
    passed: int
    failed: int
    pass_rate: float | None
    weight: float | None = Field(description="its weight in the newest weight set")
    last_seen_at: int
    worker_list: list[WorkerSummary]


class MinerList(BaseModel):
    generated_at: float
    window_s: float
    miners: list[MinerSummary]


class TimelinePoint(BaseModel):
    start: int  # epoch seconds, start of the slot
    passed: int
    failed: int
    other: int


class ChallengeView(BaseModel):
    id: str
    miner_hotkey: str
    worker_key: str
    profile: str
    n: int
    status: str
    failure_reason: str | None
    issued_at: int
    finished_at: int | None
    compute_s: float | None
    throughput: float | None


class ChallengeHistory(BaseModel):
    generated_at: float
    since: int
    step_s: int
    timeline: list[TimelinePoint]
    recent: list[ChallengeView]


class MinerScorePoint(BaseModel):
    hotkey: str
    challenge: float
    lease: float
    final: float
    weight: float


class ScoreSnapshot(BaseModel):
    at: float
    lease_active: bool
    miners: list[MinerScorePoint]


class ScoreHistory(BaseModel):
    generated_at: float
    snapshots: list[ScoreSnapshot] = Field(description="oldest first; the last one is now")


class WeightSetView(BaseModel):
    id: int
    block: int | None
    computed_at: int
    accepted: bool | None
    weights: dict[str, float] = Field(description="hotkey (or uid:N when unknown) → weight")


class WeightHistory(BaseModel):
    generated_at: float
    sets: list[WeightSetView] = Field(description="oldest first")
