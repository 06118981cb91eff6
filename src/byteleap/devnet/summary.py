"""The devnet summary: the JSON contract of DESIGN.md §7.

`byteleap devnet --json` prints exactly one `DevnetSummary` on stdout. Later
parts add their fields (jobs, leases, services) here as they land.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from byteleap.protocol.api import JobView


class StepResult(BaseModel):
    name: str
    ok: bool
    seconds: float
    error: str | None = None


class ChainSummary(BaseModel):
    block: int
    neurons: int


class MinerSummary(BaseModel):
    uid: int
    hotkey: str
    cheater: str | None = None
    workers_online: int = 0
    challenges_passed: int = 0
    challenges_failed: int = 0
    challenge_score: float = 0.0
    lease_score: float = 0.0
    weight: float = 0.0
    weight_share: float = 0.0  # its weight over all miners' weights
    # Its workers that share a key or GPU uuid with another listed worker (any miner's).
    duplicated: int = 0
    # A re-executed job of one of its workers disagreed with the majority (lease score lost).
    wrong_output: bool = False


class JobSummary(BaseModel):
    id: str
    state: str
    worker: str | None
    seconds: float | None
    artifacts: int | None = None  # files the gateway kept from the job's artifacts directory
    validated: str | None = None  # "match" / "mismatch" once output validation re-runs jobs

    @classmethod
    def of(cls, view: JobView, *, artifacts: int | None = None) -> JobSummary:
        seconds = None
        if view.started_at is not None and view.finished_at is not None:
            seconds = round(view.finished_at - view.started_at, 3)
        return cls(
            id=view.id,
            state=view.state.value,
            worker=view.worker_id,
            seconds=seconds,
            artifacts=artifacts,
            validated=view.validated,
        )


class LeaseSummary(BaseModel):
    id: str
    state: str
    receipts: int
    amount: float
    exec_ok: bool | None = None  # `echo ok` through the lease's exec endpoint answered ok


class WashLeaseSummary(BaseModel):
    """A wash-lease cheater renting its own worker as a customer, and what it paid."""

    miner: str  # the cheater's hotkey
    lease_id: str | None = None
    worker: str | None = None
    own_worker: bool = False  # the lease landed on the cheater's own worker
    state: str = "refused"
    receipts: int = 0
    paid: float = 0.0
    refused: str | None = None  # why the gateway would not place it


class ServiceSummary(BaseModel):
    id: str
    replicas_max: int  # ready replicas at the peak of the load
    replicas_after: int  # desired replicas once the load was gone
    requests_ok: int
    requests_failed: int
    cost: float


class InferenceSummary(BaseModel):
    """One streamed chat completion from the devnet's OpenAI-compatible service."""

    tokens: int = 0  # content chunks received
    text: str = ""
    seconds: float = 0.0  # the whole answer
    first_token_s: float | None = None
    skipped: str | None = None  # why the step did not run (no torch)


class CheckpointSummary(BaseModel):
    """A checkpointing job whose worker was killed mid-run, and where it resumed."""

    job: str | None = None
    state: str | None = None
    attempts: int = 0
    kept_step: int | None = None  # the checkpoint the gateway held when the worker died
    resumed_from: int | None = None  # the step the next attempt printed it started at
    killed_worker: str | None = None
    finished_on: str | None = None
    skipped: str | None = None  # why the step did not run (cheaters)


class NeuronRow(BaseModel):
    uid: int
    hotkey: str
    role: str
    stake: float
    validator_permit: bool


class DevnetSummary(BaseModel):
    ok: bool = True
    steps: list[StepResult] = Field(default_factory=list)
    chain: ChainSummary | None = None
    miners: list[MinerSummary] = Field(default_factory=list)
    jobs: list[JobSummary] = Field(default_factory=list)
    leases: list[LeaseSummary] = Field(default_factory=list)
    services: list[ServiceSummary] = Field(default_factory=list)
    inference: InferenceSummary | None = None
    checkpoint: CheckpointSummary | None = None
    wash_leases: list[WashLeaseSummary] = Field(default_factory=list)
    # The cheating miners' weights over all miners' weights (None: no cheaters).
    cheater_share: float | None = None
    neurons: list[NeuronRow] = Field(default_factory=list)
