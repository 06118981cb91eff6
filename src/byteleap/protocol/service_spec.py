"""What a customer asks for when deploying an inference service, and what they see of it.

A service is a long-running HTTP server (``command``, or ``image`` for a container) run as
replicas; each replica gets the env var ``PORT`` and must serve HTTP on it, answering
``health.path`` with a 2xx once it is ready. With ``openai`` the replicas speak OpenAI's
HTTP API (``/v1/models``, ``/v1/chat/completions``, ``/v1/completions``) and the gateway
serves it at ``/v1/openai/{service}/v1/...`` for OpenAI's own clients.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from byteleap.protocol.api import Command, Env, Image, Inputs, LogEntry, PricePerS, Resources
from byteleap.protocol.billing import DEFAULT_CURRENCY

MAX_REPLICAS = 64


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class AutoscaleSpec(_Frozen):
    """Keep between ``min_replicas`` and ``max_replicas``; aim at the targets.

    ``target_in_flight`` is requests in flight per ready replica; ``target_latency_ms`` the
    90th percentile of proxied request latency. Either or both; the larger wish wins.
    Within ``tolerance`` of a target nothing changes (hysteresis); scaling in waits until
    the load stayed low for ``scale_in_cooldown_s``.
    """

    min_replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    max_replicas: int = Field(default=1, ge=1, le=MAX_REPLICAS)
    target_in_flight: float | None = Field(default=4.0, gt=0, allow_inf_nan=False)
    target_latency_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    tolerance: float = Field(default=0.1, ge=0, lt=1)
    scale_out_cooldown_s: float = Field(default=10.0, ge=0, le=3600, allow_inf_nan=False)
    scale_in_cooldown_s: float = Field(default=60.0, ge=0, le=3600, allow_inf_nan=False)

    @model_validator(mode="after")
    def _bounds(self) -> AutoscaleSpec:
        if self.min_replicas > self.max_replicas:
            raise ValueError("min_replicas must not exceed max_replicas")
        return self


class RolloutSpec(_Frozen):
    """How a new revision replaces the old: at most ``max_surge`` replicas above the
    desired count, at most ``max_unavailable`` below it ready."""

    max_surge: int = Field(default=1, ge=0, le=MAX_REPLICAS)
    max_unavailable: int = Field(default=0, ge=0, le=MAX_REPLICAS)

    @model_validator(mode="after")
    def _can_progress(self) -> RolloutSpec:
        if self.max_surge == 0 and self.max_unavailable == 0:
            raise ValueError("max_surge and max_unavailable cannot both be 0")
        return self


class HealthSpec(_Frozen):
    path: str = Field(default="/health", pattern=r"^/[!-~]*$", max_length=500)
    healthy_threshold: int = Field(default=1, ge=1, le=10)
    unhealthy_threshold: int = Field(default=2, ge=1, le=10)
    # A replica that never turns healthy in this time is replaced.
    start_timeout_s: float = Field(default=120.0, ge=1, le=3600, allow_inf_nan=False)


class ServiceSpec(_Frozen):
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,62}$")
    command: Command
    image: Image | None = None
    env: Env = Field(default_factory=dict)
    inputs: Inputs = Field(default_factory=dict)
    resources: Resources = Resources()
    autoscale: AutoscaleSpec = AutoscaleSpec()
    rollout: RolloutSpec = RolloutSpec()
    health: HealthSpec = HealthSpec()
    max_price_per_s: PricePerS | None = None
    openai: bool = False  # the replicas serve OpenAI's API; the gateway exposes it

    @field_validator("env")
    @classmethod
    def _port_is_ours(cls, env: dict[str, str]) -> dict[str, str]:
        if "PORT" in env:
            raise ValueError("PORT is set by the worker")
        return env


class ServiceUpdate(_Frozen):
    """A new revision: what is given replaces the current value; replicas roll over."""

    command: Command | None = None
    image: Image | None = None
    env: Env | None = None
    inputs: Inputs | None = None
    rollout: RolloutSpec | None = None
    health: HealthSpec | None = None
    openai: bool | None = None

    def apply(self, spec: ServiceSpec) -> ServiceSpec:
        given = self.model_dump(exclude_unset=True, exclude_none=True)
        return ServiceSpec.model_validate({**spec.model_dump(), **given})


class ServiceScale(_Frozen):
    """New autoscaling bounds or targets (what is given replaces the current value)."""

    min_replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS)
    max_replicas: int | None = Field(default=None, ge=1, le=MAX_REPLICAS)
    target_in_flight: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    target_latency_ms: float | None = Field(default=None, gt=0, allow_inf_nan=False)

    def apply(self, spec: ServiceSpec) -> ServiceSpec:
        given = self.model_dump(exclude_unset=True, exclude_none=True)
        autoscale = AutoscaleSpec.model_validate({**spec.autoscale.model_dump(), **given})
        return spec.model_copy(update={"autoscale": autoscale})


class ServiceState(StrEnum):
    ACTIVE = "active"
    DELETING = "deleting"  # replicas are draining
    DELETED = "deleted"

    @property
    def is_terminal(self) -> bool:
        return self is ServiceState.DELETED


class ReplicaState(StrEnum):
    """A replica's stored lifecycle (its health lives in the gateway's memory)."""

    STARTING = "starting"  # placed and asked to start
    RUNNING = "running"  # the worker reported its endpoint
    DRAINING = "draining"  # out of rotation, finishing its requests
    STOPPED = "stopped"  # stopped by the gateway
    FAILED = "failed"  # lost, crashed, or never became healthy

    @property
    def is_terminal(self) -> bool:
        return self in (ReplicaState.STOPPED, ReplicaState.FAILED)


_R = ReplicaState
REPLICA_TRANSITIONS: dict[ReplicaState, frozenset[ReplicaState]] = {
    _R.STARTING: frozenset({_R.RUNNING, _R.DRAINING, _R.STOPPED, _R.FAILED}),
    _R.RUNNING: frozenset({_R.DRAINING, _R.STOPPED, _R.FAILED}),
    _R.DRAINING: frozenset({_R.STOPPED, _R.FAILED}),
    _R.STOPPED: frozenset(),
    _R.FAILED: frozenset(),
}


class ReplicaView(BaseModel):
    id: str
    revision: int
    state: ReplicaState
    health: str  # the gateway's view: pending, starting, ready, unhealthy, draining, …
    worker_id: str
    miner_hotkey: str
    endpoint: str | None = None
    in_flight: int = 0
    price_per_s: float
    created_at: float
    ended_at: float | None = None
    billed_until: float
    cost: float = 0.0
    receipts: int = 0
    error: str | None = None


class ServiceView(BaseModel):
    id: str
    name: str
    state: ServiceState
    spec: ServiceSpec
    revision: int
    desired_replicas: int
    ready_replicas: int = 0
    replicas: list[ReplicaView] = Field(default_factory=list)
    created_at: float
    updated_at: float
    cost: float = 0.0  # every replica's billed seconds so far
    currency: str = DEFAULT_CURRENCY  # the unit of ``cost`` and of the replicas' prices
    replica_seconds: float = 0.0
    # Why the service does not serve, when it does not (e.g. its replicas never became ready
    # and no more are started until it is updated); None while nothing is wrong.
    problem: str | None = None


class ReplicaLog(BaseModel):
    """One replica's log lines from ``after`` on, as its miner keeps them (a page: ``more``
    says there are lines past it; ask again from the last ``seq`` + 1)."""

    replica_id: str
    worker_id: str
    revision: int
    state: str
    lines: list[LogEntry]
    more: bool = False


class ServiceLogs(BaseModel):
    """The logs of a service's most recent replicas, newest replica first."""

    service_id: str
    replicas: list[ReplicaLog]
