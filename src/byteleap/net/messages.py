"""Wire messages between nodes, one tagged union per direction.

Every message is a frozen pydantic model with a ``type`` literal and the protocol
version ``v``; one `TypeAdapter` per direction parses any of them and anything
unknown fails loudly. Size limits are checked before parsing.

Directions:
- worker → miner over the WebSocket: `WorkerToMiner`
- miner → worker over the WebSocket: `MinerToWorker`
- validator/gateway → miner over signed HTTPS: the request and response bodies below.
"""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from byteleap.errors import ByteleapError
from byteleap.net.heartbeat import LeaseHeartbeat, WorkerId
from byteleap.net.job_times import JobTimes
from byteleap.net.wireguard.messages import JoinRequest, SignedPeerSet
from byteleap.proof import ChallengeSpec, Commitment, Reveal, RevealRequest
from byteleap.protocol.artifacts import CHUNK_BYTES, MAX_PATH_CHARS
from byteleap.protocol.checkpoints import MAX_CHECKPOINT_BYTES, MAX_CHECKPOINT_FILES
from byteleap.protocol.exec_frames import (
    ExecAck,
    ExecExited,
    ExecOutput,
    ExecResize,
    ExecStart,
    ExecStdin,
    ExecStop,
)
from byteleap.protocol.execution import ExecutionResult, ExecutionSpec, safe_relative_path
from byteleap.protocol.hardware import HardwareInventory
from byteleap.protocol.ids import Bytes32Hex, Bytes64Hex, HexId
from byteleap.protocol.states import WorkerState
from byteleap.protocol.vm_lease import StartVm, StopVm, VmAccess, VmLeaseRequest, VmReport

PROTOCOL_VERSION = 1
# A reveal at the largest n is ~1.1 MB per row; 8 rows plus proofs stay far below this.
MAX_WS_MESSAGE_BYTES = 16 * 1024 * 1024
MAX_HTTP_BODY_BYTES = 1024 * 1024

#: A job's log travels from worker to miner in pieces of at most this many bytes (``JobLogChunk``).
LOG_CHUNK_BYTES = 1 << 20
#: The most a page of log lines (``JobLogs``) carries, as JSON: far under a reply's 1 MiB.
MAX_LOG_PAGE_BYTES = 512 << 10

MAX_ARTIFACT_PATH = MAX_PATH_CHARS
MAX_ARTIFACT_READ = 4 * CHUNK_BYTES
Base64Bytes = Annotated[bytes, Field(max_length=MAX_ARTIFACT_READ)]
# Models carrying raw bytes send them base64-encoded in JSON.
_BYTES_AS_BASE64 = ConfigDict(
    frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64"
)

JobId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")]


class MessageError(ByteleapError):
    """A message was oversized, malformed or of an unknown type."""

    reason = "malformed"


class _Msg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    v: Literal[1] = PROTOCOL_VERSION


# ---- jobs (shared by the gateway→miner and miner→worker legs) ---------------------


class JobRequest(_Msg):
    """Run ``spec`` on ``worker_id`` with the named executor; ``attempt`` counts retries."""

    type: Literal["job_request"] = "job_request"
    job_id: JobId
    attempt: int = Field(ge=1, le=1000)
    worker_id: WorkerId
    executor: Literal["process", "container"] = "process"
    image: str | None = Field(default=None, max_length=500)
    spec: ExecutionSpec
    # Run on the caller's leased worker (the miner-side, anonymous lease id).
    lease_id: HexId | None = None
    # A service replica: the worker sets PORT to a free port and reports it (`JobServing`).
    serve: bool = False
    # Send the artifacts the job leaves, up to this many bytes (None: send none).
    artifact_limit_bytes: int | None = Field(default=None, ge=0, le=1 << 40)


class JobLogLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    seq: int = Field(ge=0)
    stream: Literal["stdout", "stderr"]
    line: str = Field(max_length=65536)
    ts: float


class RunState(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    REFUSED = "refused"  # the worker could not start it
    LOST = "lost"  # the worker disappeared while it ran: run it elsewhere

    @property
    def is_terminal(self) -> bool:
        return self is not RunState.RUNNING


#: The most of each output tail a job status carries; the full log is read page by page.
MAX_STATUS_TAIL_BYTES = 64 << 10


def clip_tail(text: str, limit: int = MAX_STATUS_TAIL_BYTES) -> tuple[str, int]:
    """The last ``limit`` bytes of ``text`` at most (cut at a character), and how many bytes
    were cut off."""
    data = text.encode("utf-8", errors="surrogatepass")
    if len(data) <= limit:
        return text, 0
    kept = data[-limit:].decode("utf-8", errors="ignore")  # a cut character goes whole
    return kept, len(data) - len(kept.encode("utf-8", errors="surrogatepass"))


def clip_result(result: ExecutionResult, limit: int = MAX_STATUS_TAIL_BYTES) -> ExecutionResult:
    """``result`` with each output tail clipped to ``limit`` bytes, the cut counted dropped
    (so an output's digest still counts every byte it had)."""
    stdout, stdout_cut = clip_tail(result.stdout_tail, limit)
    stderr, stderr_cut = clip_tail(result.stderr_tail, limit)
    if not stdout_cut and not stderr_cut:
        return result
    return result.model_copy(
        update={
            "stdout_tail": stdout,
            "stderr_tail": stderr,
            "stdout_dropped_bytes": result.stdout_dropped_bytes + stdout_cut,
            "stderr_dropped_bytes": result.stderr_dropped_bytes + stderr_cut,
        }
    )


class JobStatus(_Msg):
    type: Literal["job_status"] = "job_status"
    job_id: JobId
    attempt: int
    worker_id: WorkerId
    state: RunState
    result: ExecutionResult | None = None
    detail: str = ""
    log_lines: int = 0
    endpoint: str | None = None  # host:port of a service replica, once the worker reported it
    times: JobTimes | None = None  # an ended job's run, signed by its worker (what is billed)
    # The latest complete checkpoint set the miner holds; left out when none (older readers).
    checkpoint_seq: int | None = Field(default=None, exclude_if=lambda v: v is None)

    @field_validator("result")
    @classmethod
    def _small_tails(cls, result: ExecutionResult | None) -> ExecutionResult | None:
        # Clipped, not refused: a status from an older miner still reads.
        return None if result is None else clip_result(result)


class JobLogs(_Msg):
    """A page of a job's log lines, numbered from the ``after`` asked for: at most the limit
    asked for and ``MAX_LOG_PAGE_BYTES`` of JSON. ``more``: lines past this page are there
    already; ``done``: the job ended and its whole log was read (none will follow)."""

    type: Literal["job_logs"] = "job_logs"
    job_id: JobId
    lines: list[JobLogLine]
    done: bool
    more: bool = False


# ---- leases (gateway → miner) --------------------------------------------------------


class LeaseRequest(_Msg):
    """Reserve ``worker_id`` for the caller until ``ends_at`` (unix seconds)."""

    type: Literal["lease_request"] = "lease_request"
    lease_id: HexId
    worker_id: WorkerId
    ends_at: float = Field(gt=0, allow_inf_nan=False)
    # A "vm" lease runs a KVM virtual machine on the worker (see ``net.vm``).
    kind: Literal["process", "vm"] = "process"
    vm: VmLeaseRequest | None = None

    @model_validator(mode="after")
    def _vm_iff_vm_kind(self) -> LeaseRequest:
        if (self.kind == "vm") != (self.vm is not None):
            raise ValueError("a vm lease carries its vm request, and only a vm lease does")
        return self


class LeaseExtension(_Msg):
    type: Literal["lease_extension"] = "lease_extension"
    ends_at: float = Field(gt=0, allow_inf_nan=False)


ProbeId = HexId


class ProbeLease(_Msg):
    """Miner → worker: is the leased workload alive? Answer with `LeaseProbed`, and with a
    heartbeat signed over ``nonce`` (the prober's, see ``net.heartbeat``) when one is given."""

    type: Literal["probe_lease"] = "probe_lease"
    probe_id: ProbeId
    lease_id: HexId
    nonce: Bytes32Hex | None = None


class LeaseProbed(_Msg):
    """Worker → miner: the answer to one `ProbeLease`."""

    type: Literal["lease_probed"] = "lease_probed"
    probe_id: ProbeId
    alive: bool
    detail: str = Field(default="", max_length=500)
    heartbeat: LeaseHeartbeat | None = None  # signed by the worker's key, for the probe's nonce


class LeaseLiveness(_Msg):
    """Miner → gateway: how a lease's workload answered a probe (``ok`` only when alive).
    The miner's word alone proves nothing: the gateway accepts only the worker's own
    ``heartbeat``, signed for the probe's nonce (``net.heartbeat``)."""

    type: Literal["lease_liveness"] = "lease_liveness"
    lease_id: str = Field(max_length=128)
    alive: bool
    reason: Literal["ok", "ended", "closed", "timeout", "refused"]
    detail: str = Field(default="", max_length=2000)
    heartbeat: LeaseHeartbeat | None = None


class LeaseStatus(_Msg):
    type: Literal["lease_status"] = "lease_status"
    lease_id: str
    worker_id: WorkerId
    active: bool
    started_at: float
    ends_at: float
    ended_at: float | None = None
    detail: str = ""
    vm: VmAccess | None = None  # a vm lease's VM, as its worker last reported it


# ---- tenants' private networks (net.wireguard; gateway → miner → worker and back) ---

LeaseWireId = HexId
Hotkey = Annotated[str, Field(min_length=1, max_length=64)]


class LeaseNetwork(_Msg):
    """Gateway → miner: put the lease in its tenant's private network; the miner relays its
    worker's join request, signed by the miner, to ``join_url``."""

    type: Literal["lease_network"] = "lease_network"
    tenant_id: int = Field(ge=1, le=2**31 - 1)
    join_url: str = Field(max_length=500, pattern=r"^https?://[^\s]+$")
    validity_s: float = Field(gt=0, le=3600)
    skew_s: float = Field(ge=0, le=300)
    keepalive_s: int = Field(ge=0, le=3600)


class NetworkUp(_Msg):
    """Miner → worker: bring up the lease's WireGuard link and answer with `NetworkJoin`;
    accept peer sets signed by ``gateway_hotkey`` for ``miner_hotkey`` only."""

    type: Literal["network_up"] = "network_up"
    lease_id: LeaseWireId
    tenant_id: int = Field(ge=1, le=2**31 - 1)
    gateway_hotkey: Hotkey
    miner_hotkey: Hotkey
    # The worker's address as the miner sees it (the worker may be told to publish another).
    underlay_host: str = Field(max_length=45)
    validity_s: float = Field(gt=0, le=3600)
    skew_s: float = Field(ge=0, le=300)
    keepalive_s: int = Field(ge=0, le=3600)


class NetworkJoin(_Msg):
    """Worker → miner: the lease's join request, for the miner to sign and send on."""

    type: Literal["network_join"] = "network_join"
    request: JoinRequest


class NetworkPeers(_Msg):
    """Miner → worker: a gateway-signed peer set for the lease (the worker verifies it)."""

    type: Literal["network_peers"] = "network_peers"
    lease_id: LeaseWireId
    peer_set: SignedPeerSet


class NetworkDown(_Msg):
    """Miner → worker: the lease left its network (ended, or its join was refused)."""

    type: Literal["network_down"] = "network_down"
    lease_id: LeaseWireId
    reason: str = Field(default="", max_length=500)


# ---- worker → miner -------------------------------------------------------------


class Enroll(_Msg):
    """First contact: a one-time token and the worker's own public key."""

    type: Literal["enroll"] = "enroll"
    token: str = Field(min_length=16, max_length=256)
    public_key: Bytes32Hex
    hardware: HardwareInventory


class Hello(_Msg):
    """Later contacts: the worker signs the miner's fresh nonce with its key."""

    type: Literal["hello"] = "hello"
    worker_id: WorkerId
    signature: Bytes64Hex
    hardware: HardwareInventory


class Heartbeat(_Msg):
    type: Literal["heartbeat"] = "heartbeat"
    sent_at: float


class Committed(_Msg):
    type: Literal["committed"] = "committed"
    commitment: Commitment


class Revealed(_Msg):
    type: Literal["revealed"] = "revealed"
    reveal: Reveal


class ChallengeAborted(_Msg):
    type: Literal["challenge_aborted"] = "challenge_aborted"
    challenge_id: str = Field(max_length=128)
    reason: str = Field(max_length=500)


class JobOutput(_Msg):
    """A batch of a running job's log lines, numbered from 0 in order (how workers before
    `JobLogChunk` sent their logs; a miner still takes them)."""

    type: Literal["job_output"] = "job_output"
    job_id: JobId
    lines: list[JobLogLine] = Field(max_length=1000)


class JobLogChunk(_Msg):
    """Bytes ``offset``… of a job's log as its worker spilled it (records of ``net.job_log``),
    sent in order; the last ones may come after the job's `JobEnded`, which says the size."""

    model_config = _BYTES_AS_BASE64
    type: Literal["job_log_chunk"] = "job_log_chunk"
    job_id: JobId
    offset: int = Field(ge=0)
    data: Annotated[bytes, Field(min_length=1, max_length=LOG_CHUNK_BYTES)]


class JobEnded(_Msg):
    """The job ended with ``result``; ``log_bytes``: the whole size of its log in
    `JobLogChunk` bytes (None: a worker that sends its log as `JobOutput` lines)."""

    type: Literal["job_ended"] = "job_ended"
    job_id: JobId
    result: ExecutionResult
    log_bytes: int | None = Field(default=None, ge=0)
    times: JobTimes | None = None  # the run's start and end, signed by the worker


class ArtifactChunk(_Msg):
    """A piece of one artifact of a job that ended, sent before its `JobEnded`; the
    pieces of a file come in order, ``last`` on its final one (see ``protocol.artifacts``)."""

    model_config = _BYTES_AS_BASE64
    type: Literal["artifact_chunk"] = "artifact_chunk"
    job_id: JobId
    path: str = Field(min_length=1, max_length=MAX_ARTIFACT_PATH)
    offset: int = Field(ge=0)
    data: Base64Bytes
    last: bool


class CheckpointFile(BaseModel):
    model_config = _BYTES_AS_BASE64

    path: str = Field(min_length=1, max_length=MAX_ARTIFACT_PATH)  # inside the checkpoint dir
    size: int = Field(ge=0, le=MAX_CHECKPOINT_BYTES)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    data: bytes = Field(max_length=MAX_CHECKPOINT_BYTES)


class CheckpointSet(_Msg):
    """A running job's whole checkpoint dir as it was at one moment (worker → miner, and
    miner → gateway when asked); ``seq`` grows with each set the worker sends. Parsing checks
    it whole — every file's size and sha256, clean distinct paths, the total — so a set that
    is kept anywhere is complete (see ``protocol.checkpoints``)."""

    model_config = _BYTES_AS_BASE64
    type: Literal["checkpoint_set"] = "checkpoint_set"
    job_id: JobId
    seq: int = Field(ge=1)
    files: list[CheckpointFile] = Field(max_length=MAX_CHECKPOINT_FILES)

    @model_validator(mode="after")
    def _complete(self) -> CheckpointSet:
        paths = set()
        for file in self.files:
            if safe_relative_path(file.path) != file.path or file.path in paths:
                raise ValueError(f"checkpoint path {file.path!r} is not clean or repeats")
            paths.add(file.path)
            if len(file.data) != file.size or hashlib.sha256(file.data).hexdigest() != file.sha256:
                raise ValueError(f"checkpoint file {file.path!r} does not match its digest")
        if sum(file.size for file in self.files) > MAX_CHECKPOINT_BYTES:
            raise ValueError(f"a checkpoint holds at most {MAX_CHECKPOINT_BYTES} bytes")
        return self


class JobServing(_Msg):
    """A service replica was started with ``PORT`` set to ``port`` on the worker's host."""

    type: Literal["job_serving"] = "job_serving"
    job_id: JobId
    port: int = Field(ge=1, le=65535)


class JobRefused(_Msg):
    """The worker could not start the job (bad spec, unavailable executor, …)."""

    type: Literal["job_refused"] = "job_refused"
    job_id: JobId
    reason: str = Field(max_length=100)
    detail: str = Field(default="", max_length=2000)


WorkerToMiner = Annotated[
    Enroll
    | Hello
    | VmReport
    | Heartbeat
    | Committed
    | Revealed
    | ChallengeAborted
    | JobOutput
    | JobLogChunk
    | JobServing
    | JobEnded
    | JobRefused
    | ArtifactChunk
    | CheckpointSet
    | LeaseProbed
    | NetworkJoin
    | ExecOutput
    | ExecExited,
    Field(discriminator="type"),
]

# ---- miner → worker -------------------------------------------------------------


class AuthNonce(_Msg):
    type: Literal["auth_nonce"] = "auth_nonce"
    nonce: Bytes32Hex
    miner_hotkey: str


class Welcome(_Msg):
    type: Literal["welcome"] = "welcome"
    worker_id: WorkerId
    heartbeat_s: float


class Refused(_Msg):
    type: Literal["refused"] = "refused"
    reason: str


class RunChallenge(_Msg):
    type: Literal["run_challenge"] = "run_challenge"
    spec: ChallengeSpec


class AskReveal(_Msg):
    type: Literal["ask_reveal"] = "ask_reveal"
    request: RevealRequest


class RunJob(_Msg):
    type: Literal["run_job"] = "run_job"
    job: JobRequest


class CancelJob(_Msg):
    type: Literal["cancel_job"] = "cancel_job"
    job_id: JobId


MinerToWorker = Annotated[
    AuthNonce
    | StartVm
    | StopVm
    | Welcome
    | Refused
    | RunChallenge
    | AskReveal
    | RunJob
    | CancelJob
    | ProbeLease
    | NetworkUp
    | NetworkPeers
    | NetworkDown
    | ExecStart
    | ExecStdin
    | ExecResize
    | ExecStop
    | ExecAck,
    Field(discriminator="type"),
]

# ---- validator → miner (HTTPS bodies) --------------------------------------------


class WorkerView(BaseModel):
    model_config = ConfigDict(frozen=True)

    worker_id: WorkerId
    public_key: Bytes32Hex
    state: WorkerState
    profile: str
    hardware: HardwareInventory
    last_seen: float
    ip: str | None = None


class WorkerList(_Msg):
    type: Literal["worker_list"] = "worker_list"
    miner_hotkey: str
    workers: list[WorkerView]


class StartChallenge(_Msg):
    type: Literal["start_challenge"] = "start_challenge"
    worker_id: WorkerId
    spec: ChallengeSpec


#: The most challenges one batch carries (the validator challenges at most this many workers of
#: one miner in a round).
MAX_BATCH = 256


class ChallengeBatch(_Msg):
    """Every challenge a miner gets in a round, issued at one instant (validator → miner).

    The miner starts them all at once and answers at once with an acknowledgement; the
    validator then collects the results as they come (``ChallengeBatchReply``) and times each
    commitment's arrival itself, so the order the miner serves them in cannot raise what they
    are credited (``scoring.credit``).
    """

    type: Literal["challenge_batch"] = "challenge_batch"
    batch_id: HexId
    items: list[StartChallenge] = Field(min_length=1, max_length=MAX_BATCH)

    @model_validator(mode="after")
    def _one_challenge_per_worker(self) -> ChallengeBatch:
        workers = {item.worker_id for item in self.items}
        challenges = {item.spec.challenge_id for item in self.items}
        if len(workers) != len(self.items) or len(challenges) != len(self.items):
            raise ValueError("a batch names each worker and each challenge once")
        return self


class BatchItemResult(_Msg):
    """One worker's answer in a batch: its commitment, or why there is none."""

    worker_id: WorkerId
    challenge_id: str = Field(max_length=128)
    commitment: Commitment | None = None
    error: str | None = Field(default=None, max_length=64)

    @model_validator(mode="after")
    def _commitment_or_error(self) -> BatchItemResult:
        if (self.commitment is None) == (self.error is None):
            raise ValueError("a result holds a commitment or an error, not both or neither")
        if self.commitment is not None and self.commitment.challenge_id != self.challenge_id:
            raise ValueError("the commitment answers another challenge")
        return self


class ChallengeBatchReply(_Msg):
    """The batch's results from position ``seen`` on, in the order they completed; ``done``
    once every challenge of the batch has one."""

    type: Literal["challenge_batch_reply"] = "challenge_batch_reply"
    batch_id: HexId
    seen: int = Field(ge=0, le=MAX_BATCH)
    results: list[BatchItemResult] = Field(max_length=MAX_BATCH)
    done: bool = False


class ArtifactRead(_Msg):
    """Read ``length`` bytes of a job's artifact from ``offset`` (gateway → miner)."""

    type: Literal["artifact_read"] = "artifact_read"
    path: str = Field(min_length=1, max_length=MAX_ARTIFACT_PATH)
    offset: int = Field(ge=0)
    length: int = Field(ge=1, le=MAX_ARTIFACT_READ)


class ArtifactPiece(_Msg):
    model_config = _BYTES_AS_BASE64
    type: Literal["artifact_piece"] = "artifact_piece"
    path: str
    offset: int = Field(ge=0)
    data: Base64Bytes
    eof: bool


class Pong(_Msg):
    type: Literal["pong"] = "pong"
    miner_time: float


_WORKER_TO_MINER: TypeAdapter[WorkerToMiner] = TypeAdapter(WorkerToMiner)
_MINER_TO_WORKER: TypeAdapter[MinerToWorker] = TypeAdapter(MinerToWorker)
_T = TypeVar("_T")


def _parse(adapter: TypeAdapter[_T], raw: bytes | str, max_bytes: int) -> _T:
    if len(raw) > max_bytes:
        raise MessageError(f"message of {len(raw)} bytes exceeds {max_bytes}", reason="oversized")
    try:
        return adapter.validate_json(raw)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise MessageError(f"malformed message at {where or '<root>'}: {first['msg']}") from None


def parse_worker_message(raw: bytes | str, max_bytes: int = MAX_WS_MESSAGE_BYTES) -> WorkerToMiner:
    return _parse(_WORKER_TO_MINER, raw, max_bytes)


def parse_miner_message(raw: bytes | str, max_bytes: int = MAX_WS_MESSAGE_BYTES) -> MinerToWorker:
    return _parse(_MINER_TO_WORKER, raw, max_bytes)
