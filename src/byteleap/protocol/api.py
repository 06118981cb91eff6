"""What customers send and see, and the job lifecycle table.

Job states: queued → scheduled → running → succeeded | failed | cancelled | timed_out.
A job whose worker is lost goes back to queued and runs again elsewhere (an attempt
each time); terminal states have no way out.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from byteleap.protocol.artifacts import MAX_PATH_CHARS
from byteleap.protocol.billing import DEFAULT_CURRENCY
from byteleap.protocol.checkpoints import MAX_CHECKPOINT_BYTES, MAX_CHECKPOINT_FILES
from byteleap.protocol.execution import (
    DEFAULT_ARTIFACTS_DIR,
    MAX_ARGV_JSON_BYTES,
    MAX_ENV_JSON_BYTES,
    MAX_INLINE_INPUTS_JSON_BYTES,
    InputFile,
    check_argv,
    check_checkpoint_dir,
    check_env,
    check_image,
    check_inputs,
    check_wire_size,
    inputs_inside,
    safe_relative_path,
)
from byteleap.protocol.ssh import MAX_SSH_KEY_CHARS, check_ssh_public_key
from byteleap.protocol.vm_lease import VmAccess

MAX_RETRIES = 5
MAX_JOB_TIMEOUT_S = 24 * 3600.0
MIN_TIMEOUT_S = 1.0
#: A price cap outside these is a mistake (the default GPU price is under 0.002 per second).
MIN_PRICE_PER_S = 1e-12
MAX_PRICE_PER_S = 100.0
PricePerS = Annotated[float, Field(ge=MIN_PRICE_PER_S, le=MAX_PRICE_PER_S, allow_inf_nan=False)]


# What a job's and a service's program is made of, checked at submit as the gateway's dispatch
# and the worker's executors would check it later (``ExecutionSpec``, the image grammar), plus
# what the miner's message limit allows: a spec taken here must never fail a dispatch pass.
def checked_command(command: list[str]) -> list[str]:
    check_wire_size(command, MAX_ARGV_JSON_BYTES, "the arguments")
    return check_argv(command)


def checked_env(env: dict[str, str]) -> dict[str, str]:
    check_wire_size(env, MAX_ENV_JSON_BYTES, "the environment variables")
    return check_env(env, names=True)


def checked_inputs(inputs: dict[str, InputFile]) -> dict[str, InputFile]:
    check_wire_size(inputs, MAX_INLINE_INPUTS_JSON_BYTES, "the inputs")
    if DEFAULT_ARTIFACTS_DIR in check_inputs(inputs):
        raise ValueError(f"an input cannot take the artifacts dir {DEFAULT_ARTIFACTS_DIR!r}")
    return inputs


Command = Annotated[list[str], Field(min_length=1, max_length=256), AfterValidator(checked_command)]
Env = Annotated[dict[str, str], Field(max_length=256), AfterValidator(checked_env)]
Inputs = Annotated[dict[str, InputFile], Field(max_length=256), AfterValidator(checked_inputs)]
Image = Annotated[str, Field(max_length=500), AfterValidator(check_image)]


class JobState(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"

    @property
    def is_terminal(self) -> bool:
        return not JOB_TRANSITIONS[self]


_J = JobState
_ENDS = frozenset({_J.SUCCEEDED, _J.FAILED, _J.CANCELLED, _J.TIMED_OUT})
JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    _J.QUEUED: frozenset({_J.SCHEDULED, _J.CANCELLED, _J.FAILED}),
    # back to queued: the worker refused or was lost before or while running
    _J.SCHEDULED: frozenset({_J.RUNNING, _J.QUEUED}) | _ENDS,
    _J.RUNNING: frozenset({_J.QUEUED}) | _ENDS,
    _J.SUCCEEDED: frozenset(),
    _J.FAILED: frozenset(),
    _J.CANCELLED: frozenset(),
    _J.TIMED_OUT: frozenset(),
}


class Resources(BaseModel):
    """What one placement needs. ``gpu_count`` 0 is CPU-only work; a count with no model
    takes any model; a model or VRAM asked of no GPUs is refused (the scheduler would)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gpu_count: int = Field(default=0, ge=0, le=64)
    gpu_model: str | None = Field(default=None, min_length=1, max_length=100)
    min_vram_mib: int = Field(default=0, ge=0, le=1 << 24)
    cpu_cores: int = Field(default=1, ge=1, le=1024)
    ram_mib: int = Field(default=256, ge=16, le=1 << 32)

    @field_validator("gpu_model", "min_vram_mib")
    @classmethod
    def _needs_gpus(cls, value: str | int | None, info: ValidationInfo) -> str | int | None:
        if value and info.data.get("gpu_count", 1) == 0:
            raise ValueError(f"{info.field_name} needs gpu_count >= 1")
        return value


class JobSpec(BaseModel):
    """A customer's job. ``image`` runs it in a container; without it, as a process."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    command: Command
    image: Image | None = None
    env: Env = Field(default_factory=dict)
    inputs: Inputs = Field(default_factory=dict)
    resources: Resources = Resources()
    timeout_s: float = Field(
        default=3600.0, ge=MIN_TIMEOUT_S, le=MAX_JOB_TIMEOUT_S, allow_inf_nan=False
    )
    retries: int = Field(default=2, ge=0, le=MAX_RETRIES)
    max_price_per_s: PricePerS | None = None
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=200)
    deterministic: bool = False
    # Have the result re-executed on another miner's worker and compared (needs
    # ``deterministic``); deterministic jobs are also sampled without being asked.
    validate_output: bool = False
    # Run on this lease's worker (the tenant's own, already billed) instead of a new one.
    lease_id: str | None = Field(default=None, pattern=r"^lease_[0-9a-f]{24}$")
    # None: the executor's default — no network in a container; a bare process (no image)
    # cannot be cut off from the network, so asking for "none" needs an image.
    network: Literal["none", "host"] | None = None
    checkpoint: str | None = Field(
        default=None,
        max_length=MAX_PATH_CHARS,
        description=(
            "A directory in the work dir the worker sends to the gateway whenever it changes "
            f"(at most {MAX_CHECKPOINT_BYTES} bytes in {MAX_CHECKPOINT_FILES} files, names "
            "starting with '.' left out); a retried attempt starts with the last complete "
            "set written back into it."
        ),
    )

    @field_validator("checkpoint")
    @classmethod
    def _checkpoint_path(cls, path: str | None) -> str | None:
        return None if path is None else safe_relative_path(path)

    @model_validator(mode="after")
    def _checkpoint_is_free(self) -> JobSpec:
        if self.checkpoint is not None:
            check_checkpoint_dir(
                self.checkpoint, artifacts_dir=DEFAULT_ARTIFACTS_DIR, inputs=list(self.inputs)
            )
            # Inputs inside it would be overwritten by the checkpoint a retry restores.
            inside = inputs_inside(self.checkpoint, list(self.inputs))
            if inside:
                raise ValueError(f"input {inside[0]!r} lies inside the checkpoint dir")
        return self

    @model_validator(mode="after")
    def _validation_needs_determinism(self) -> JobSpec:
        if self.validate_output and not self.deterministic:
            raise ValueError("validate_output needs deterministic: only then must runs agree")
        return self

    @model_validator(mode="after")
    def _isolation_needs_a_container(self) -> JobSpec:
        if self.network == "none" and self.image is None:
            raise ValueError("network 'none' needs an image: a bare process shares the network")
        return self


class JobView(BaseModel):
    """A job as its tenant sees it (times in Unix epoch seconds)."""

    id: str
    state: JobState
    spec: JobSpec
    attempts: int = 0
    worker_id: str | None = None
    miner_hotkey: str | None = None
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    error: str | None = None
    cost: float = 0.0  # billed so far, per second of running
    currency: str = DEFAULT_CURRENCY  # the unit of ``cost`` and of the spec's prices
    # Output validation: None when not re-executed (see gateway.output_verdicts).
    validated: Literal["match", "mismatch", "pending"] | None = None


class LogEntry(BaseModel):
    seq: int
    stream: Literal["stdout", "stderr"]
    line: str
    ts: float


MAX_LEASE_S = 7 * 24 * 3600.0


class LeaseState(StrEnum):
    ACTIVE = "active"
    RELEASED = "released"  # by the tenant
    EXPIRED = "expired"  # its time ran out
    FAILED = "failed"  # the worker was lost or refused

    @property
    def is_terminal(self) -> bool:
        return self is not LeaseState.ACTIVE


_L = LeaseState
#: Lease moves: an active lease ends one way; an ended lease goes nowhere.
LEASE_TRANSITIONS: dict[LeaseState, frozenset[LeaseState]] = {
    _L.ACTIVE: frozenset({_L.RELEASED, _L.EXPIRED, _L.FAILED}),
    _L.RELEASED: frozenset(),
    _L.EXPIRED: frozenset(),
    _L.FAILED: frozenset(),
}


class LeaseSpec(BaseModel):
    """Reserve one worker (its GPUs, or its CPU) for ``duration_s``, billed per second.

    ``kind="vm"``: the lease is a KVM virtual machine on the worker with the leased GPUs passed
    through; ``ssh_public_key`` (required) is its only way in (no password, no screen).
    ``vcpus`` and ``memory_mib`` size it (unset: the worker's defaults)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    resources: Resources = Resources()
    duration_s: float = Field(ge=10, le=MAX_LEASE_S, allow_inf_nan=False)
    max_price_per_s: PricePerS | None = None
    # "private": the lease joins its tenant's private WireGuard network (the tenant's other
    # private leases reach it; nothing else does). None: no overlay network.
    network: Literal["private"] | None = None
    kind: Literal["process", "vm"] = "process"
    ssh_public_key: str | None = Field(
        default=None, max_length=MAX_SSH_KEY_CHARS, validate_default=True
    )
    vcpus: int | None = Field(default=None, ge=1, le=512)
    memory_mib: int | None = Field(default=None, ge=256, le=4 << 20)

    @field_validator("ssh_public_key")
    @classmethod
    def _key_for_a_vm(cls, key: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("kind") != "vm":
            if key is not None:
                raise ValueError("ssh_public_key is only for kind 'vm'")
            return None
        if key is None:
            raise ValueError("a vm lease needs ssh_public_key (the only way into the VM)")
        return check_ssh_public_key(key)

    @field_validator("vcpus", "memory_mib")
    @classmethod
    def _size_of_a_vm(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and info.data.get("kind") != "vm":
            raise ValueError(f"{info.field_name} is only for kind 'vm'")
        return value


class LeaseView(BaseModel):
    """A lease as its tenant sees it. Times are Unix epoch seconds (UTC), as everywhere in
    the API; the CLI prints them as ISO 8601."""

    id: str
    state: LeaseState
    spec: LeaseSpec
    worker_id: str
    miner_hotkey: str
    gpu_model: str | None = Field(description="The leased GPUs' model; null for a CPU lease.")
    gpu_count: int = Field(description="GPUs leased; 0 for a CPU lease.")
    cpu_cores: int = Field(
        default=1, description="CPU cores asked for (what a CPU lease is priced by)."
    )
    price_per_s: float
    created_at: float
    ends_at: float = Field(description="When the lease ends unless extended (epoch seconds).")
    ended_at: float | None = None
    billed_until: float
    cost: float = 0.0
    currency: str = DEFAULT_CURRENCY  # the unit of ``cost`` and ``price_per_s``
    receipts: int = 0
    # Liveness (see gateway.liveness): a degraded lease stopped answering its probes, is
    # billed no further, and is offered a replacement the tenant may create.
    health: Literal["ok", "degraded"] = "ok"
    degraded_reason: str | None = None
    degraded_at: float | None = None
    replacement_offer: LeaseSpec | None = None
    # A vm lease's VM as its worker last reported it, and the way in: ``ssh <user>@<address>``
    # once the guest's address is known (an address on the worker host's network).
    vm: VmAccess | None = None
    access: str | None = None
