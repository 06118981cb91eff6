"""Configuration: one pydantic-settings model per role.

Sources, highest priority first: explicit arguments, ``BYTELEAP_*`` environment
variables (nested fields with ``__``, e.g. ``BYTELEAP_STORE__URL``), a TOML file
(``--config``; each role reads its own table ``[validator]``, ``[miner]`` … or,
when the file has no such table, the top level), then defaults.

Numbers marked (param) in DESIGN.md live here, not in code.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from byteleap.errors import ByteleapError
from byteleap.proof.errors import InexactSizeError
from byteleap.proof.profiles import Profile, value_bounds
from byteleap.protocol.billing import DEFAULT_CURRENCY, Currency
from byteleap.scoring.params import ScoringParams

DEFAULT_HOME = Path(".devnet")

# Networks the bittensor SDK resolves by name; anything else must be a ws(s):// URL.
BITTENSOR_NETWORKS = ("finney", "test", "archive", "local")


class ConfigError(ByteleapError):
    """The configuration is invalid; the message names the field."""

    reason = "config"


class WalletSettings(BaseModel):
    name: str = "default"
    hotkey: str = "default"
    path: Path = Path.home() / ".bittensor" / "wallets"


class ChainSettings(BaseModel):
    adapter: Literal["local", "bittensor"] = "local"
    # local adapter: base URL of `byteleap chain serve`
    url: str = "http://127.0.0.1:9944"
    # bittensor adapter: a network name or a ws(s):// endpoint
    network: str = "finney"
    netuid: int = Field(default=1, ge=0, le=65535)
    timeout_s: float = Field(default=10.0, gt=0)

    @field_validator("network")
    @classmethod
    def _known_network(cls, value: str) -> str:
        if value in BITTENSOR_NETWORKS or re.match(r"^wss?://[^\s/]+", value):
            return value
        raise ValueError(
            f"unknown network {value!r}: use one of {', '.join(BITTENSOR_NETWORKS)} "
            "or a ws:// / wss:// endpoint"
        )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^\s/]+", value):
            raise ValueError(f"not an http(s) URL: {value!r}")
        return value.rstrip("/")


class StoreSettings(BaseModel):
    # SQLite file by default; PostgreSQL via postgresql+asyncpg://user@host/db
    url: str = f"sqlite+aiosqlite:///{DEFAULT_HOME / 'validator.db'}"
    echo: bool = False

    @field_validator("url")
    @classmethod
    def _supported_driver(cls, value: str) -> str:
        if not value.startswith(("sqlite+aiosqlite://", "postgresql+asyncpg://")):
            raise ValueError(
                "store url must start with sqlite+aiosqlite:// or postgresql+asyncpg://"
            )
        return value


class JobLogSettings(BaseModel):
    """(params) Job logs spilled to disk under the node's state dir, whole up to a cap per
    job; past the total for all jobs, finished jobs' logs go first (``net.log_spill``)."""

    max_job_bytes: int = Field(default=256 << 20, ge=1 << 20)
    max_total_bytes: int = Field(default=2 << 30, ge=1 << 20)


class RoleSettings(BaseSettings):
    """Base for every role: env prefix, nested delimiter and the TOML source."""

    model_config = SettingsConfigDict(
        env_prefix="BYTELEAP_", env_nested_delimiter="__", extra="forbid"
    )
    role: ClassVar[str] = ""
    # Set by load_settings() for the duration of one load; a class-level slot
    # because pydantic-settings builds sources from the class, not the instance.
    _toml_data: ClassVar[dict[str, Any]] = {}

    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    home: Path = DEFAULT_HOME

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlTable(settings_cls, cls._toml_data))


class _TomlTable(PydanticBaseSettingsSource):
    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class ChainServiceSettings(RoleSettings):
    """`byteleap chain serve`: the embedded devnet chain."""

    role: ClassVar[str] = "chain"
    host: str = "127.0.0.1"
    port: int = Field(default=9944, ge=0, le=65535)
    db_path: Path = DEFAULT_HOME / "chain.db"
    netuid: int = Field(default=1, ge=0)
    block_time_s: float = Field(default=12.0, gt=0)  # (param) fast in devnet
    tempo: int = Field(default=360, ge=1)  # (param) blocks between emissions
    max_uids: int = Field(default=256, ge=1)  # (param)
    immunity_period: int = Field(default=4096, ge=0)  # (param) blocks
    max_validators: int = Field(default=64, ge=1)  # (param) permits to top stake
    weights_rate_limit: int = Field(default=100, ge=0)  # (param) blocks between sets
    kappa: float = Field(default=0.5, gt=0, le=1)  # (param) consensus majority
    request_max_age_s: float = Field(default=30.0, gt=0)


class ValidatorSettings(RoleSettings):
    role: ClassVar[str] = "validator"
    wallet: WalletSettings = WalletSettings()
    chain: ChainSettings = ChainSettings()
    store: StoreSettings = StoreSettings()
    round_interval_s: float = Field(default=240.0, gt=0)  # (param)
    weights_interval_s: float = Field(default=420.0, gt=0)  # (param)
    weights_every_blocks: int = Field(default=105, ge=1)  # (param)
    max_workers_per_miner: int = Field(default=100, ge=1)  # (param)
    challenge_n: int = Field(default=2048, ge=2, le=65536)  # (param)
    challenge_profile: Literal["cpu-f64", "cuda-f16", "cuda-i8"] = "cpu-f64"
    # Workers that report a GPU get this profile, at a size drawn from the model and VRAM they
    # claim (proof.sizing): about this long on the claimed card, with most of its memory
    # resident. Every model takes about the same time, so a mixed fleet finishes together;
    # 1.8 s lies inside every table model's feasible range (an H100 SXM's memory caps it at
    # 1.87 s; proof.sizing.time_range).
    gpu_challenge_target_s: float = Field(default=1.8, gt=0, le=30)  # (param)
    # Added to a GPU challenge's deadline for the trip from validator to worker and back; kept
    # small, so the deadline stays under twice the claimed time (one card cannot do two).
    gpu_network_allowance_s: float = Field(default=0.25, ge=0, le=5)  # (param)
    gpu_challenge_profile: Literal["cpu-f64", "cuda-f16", "cuda-i8"] = "cuda-f16"
    challenge_ttl_s: float = Field(default=60.0, gt=0)  # (param)
    # After the last commitment deadline, how long the reveals of a round may take; a round
    # ends at its last deadline plus this, whatever its miners do.
    reveal_budget_s: float = Field(default=30.0, gt=0)  # (param)
    # ...plus this per challenge of the round: one core reads and verifies the reveals, so a
    # full subnet's round needs minutes where a small one needs seconds.
    reveal_s_per_challenge: float = Field(default=0.015, ge=0, le=1)  # (param)
    reveal_rows: int = Field(default=8, ge=1)  # (param) s
    reveal_cols: int = Field(default=32, ge=1)  # (param) t
    store_retry_s: float = Field(default=5.0, gt=0)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # Prometheus, if set
    scoring: ScoringParams = ScoringParams()
    # Challenges older than this are deleted once a round (`byteleap db prune` by hand); at
    # least the longest scoring window, so pruning never changes a score. Two weeks by
    # default: room to look back at a week-old incident.
    challenge_retention_s: float = Field(default=14 * 86400.0, gt=0)  # (param)

    @model_validator(mode="after")
    def _retention_covers_scoring(self) -> ValidatorSettings:
        longest = self.scoring.longest_window_s
        if self.challenge_retention_s < longest:
            raise ValueError(
                f"challenge_retention_s = {self.challenge_retention_s:g} s is shorter than the "
                f"longest scoring window ({longest:g} s = {longest / 3600:g} h): pruning would "
                "delete challenges that scoring still reads"
            )
        return self

    @model_validator(mode="after")
    def _exact_challenge_size(self) -> ValidatorSettings:
        # Refused at load, not at the first round: each profile accepts only the sizes whose
        # values it can keep exact and out of reach of a cheaper number format.
        for name, profile, n in (("challenge_n", self.challenge_profile, self.challenge_n),):
            try:
                value_bounds(Profile(profile), n)
            except InexactSizeError as exc:
                raise ValueError(f"{name}: {exc}") from None
        return self


class MinerSettings(RoleSettings):
    role: ClassVar[str] = "miner"
    wallet: WalletSettings = WalletSettings()
    chain: ChainSettings = ChainSettings()
    host: str = "127.0.0.1"
    port: int = Field(default=8091, ge=0, le=65535)
    # The address validators reach, published as the axon (defaults to host).
    external_ip: str | None = None
    heartbeat_s: float = Field(default=30.0, gt=0)  # (param)
    missed_heartbeats: int = Field(default=3, ge=1)  # (param)
    token_ttl_s: float = Field(default=3600.0, gt=0)
    rate_per_s: float = Field(default=20.0, gt=0)  # per validator hotkey
    rate_burst: float = Field(default=200.0, ge=1)
    permit_cache_s: float = Field(default=12.0, ge=0)
    # Prometheus on 127.0.0.1 only, if set: never on the public TLS port, where anyone could
    # read how many workers sit idle and who calls how often.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Jobs' logs, whole up to the cap, under <home>/miner/job-logs (kept while the job is).
    job_logs: JobLogSettings = JobLogSettings()

    @property
    def state_dir(self) -> Path:
        return self.home / "miner"


class WorkerVmSettings(BaseModel):
    """VM leases on this worker (see ``worker.vm``): off unless enabled, with a base image."""

    enabled: bool = False
    uri: str = "qemu:///system"  # the libvirt connection ("test:///default" in tests)
    domain_type: Literal["kvm", "qemu"] = "kvm"  # qemu: hosts without KVM (slow, tests)
    base_image: Path | None = None  # the qcow2 every VM's overlay is layered on, never written
    disk_dir: Path | None = None  # each VM's overlay and seed; None: <home>/vm
    network: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]{1,64}$")  # libvirt's
    username: str = Field(default="byteleap", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    default_vcpus: int = Field(default=4, ge=1, le=512)  # a lease that does not say
    default_memory_mib: int = Field(default=16384, ge=256, le=4 << 20)

    @model_validator(mode="after")
    def _enabled_needs_an_image(self) -> WorkerVmSettings:
        if self.enabled and self.base_image is None:
            raise ValueError("vm.enabled needs vm.base_image (a qcow2 the VMs boot from)")
        return self


class WorkerInputSettings(BaseModel):
    """Inputs given by URL (``worker.input_cache``): fetched once per digest into a cache
    capped at ``cache_max_bytes`` (least recently used evicted), each file at most
    ``max_bytes``. ``allow_private`` lets a URL reach loopback, private and link-local
    addresses: off, so a job cannot use the worker to probe the miner's own network."""

    # None: <home>/input-cache. One worker's alone: pins and per-digest locks are in-process.
    cache_dir: Path | None = None
    cache_max_bytes: int = Field(default=20 << 30, ge=1 << 20)
    max_bytes: int = Field(default=8 << 30, ge=1)
    allow_private: bool = False
    connect_timeout_s: float = Field(default=10.0, gt=0, le=300)
    read_timeout_s: float = Field(default=60.0, gt=0, le=3600)  # between two reads
    # One whole fetch: a server that drips a byte a minute must not hold the worker for days.
    fetch_timeout_s: float = Field(default=3600.0, gt=0, le=24 * 3600)

    @model_validator(mode="after")
    def _a_file_fits_the_cache(self) -> WorkerInputSettings:
        if self.max_bytes > self.cache_max_bytes:
            raise ValueError("inputs.max_bytes must not exceed inputs.cache_max_bytes")
        return self


class WorkerSettings(RoleSettings):
    role: ClassVar[str] = "worker"
    miner_url: str = "wss://127.0.0.1:8091/v1/worker"
    token: str | None = None
    # The address other workers reach this one's WireGuard links at, for tenants' private
    # networks (default: the address the miner sees the worker connect from).
    network_host: str | None = Field(default=None, max_length=45)
    # auto: CUDA challenges on the GPU (torch) where one is there, everything else numpy.
    backend: Literal["auto", "numpy", "torch"] = "auto"
    # Anything but honest is for tests and `devnet --cheaters`.
    behaviour: Literal[
        "honest",
        "hang",
        "lazy",
        "partial-compute",
        "low-precision",
        "sparse-error",
        "wrong-output",
        "multiplex",
        "model-spoof",
        "refuse-reveal",
        "wash-lease",
    ] = "honest"
    # The lock file ``multiplex`` workers share, so that they take turns on one "device".
    device_lock: Path | None = None
    # The least time a challenge takes here, as on a card of that speed (devnet only: every
    # worker stands for its own card on one host; see worker.behaviours.paced).
    device_pace_s: float = Field(default=0.0, ge=0, le=60)
    # How jobs run here: "process" as each job asks (a process, or a container when it names
    # an image); "container" every job in a local container; "kubernetes" every job as a
    # Kubernetes Job in the cluster KUBECONFIG (and BYTELEAP_K8S_*) points at.
    executor: Literal["process", "container", "kubernetes"] = "process"
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # Prometheus, if set
    vm: WorkerVmSettings = WorkerVmSettings()
    # Jobs' logs under <home>/job-logs, until sent to the miner.
    job_logs: JobLogSettings = JobLogSettings()
    inputs: WorkerInputSettings = WorkerInputSettings()
    # The host's GPUs (NVML / nvidia-smi indices) this worker serves; None: those
    # CUDA_VISIBLE_DEVICES names, or every GPU when it is unset. One worker per GPU is `[3]`.
    # From the environment as `BYTELEAP_GPUS=3` or `3,5` (NoDecode: not JSON).
    gpus: Annotated[list[int] | None, NoDecode] = None

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return parse_gpu_indices([value])
        if isinstance(value, int):
            return [value]
        return value

    @field_validator("gpus")
    @classmethod
    def _distinct_gpus(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (any(g < 0 for g in value) or len(set(value)) != len(value)):
            raise ValueError(f"GPU indices must be distinct and non-negative, not {value}")
        return value

    @field_validator("miner_url")
    @classmethod
    def _wss_url(cls, value: str) -> str:
        if not value.startswith("wss://"):
            raise ValueError("miner_url must be a wss:// URL (workers only talk TLS)")
        return value


def parse_gpu_indices(values: list[str]) -> list[int]:
    """``["3", "5,6"]`` (repeated ``--gpu`` options, each maybe a comma list) → ``[3, 5, 6]``."""
    indices: list[int] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if not part.isdigit():
                raise ValueError(f"{part!r} is not a GPU index (0, 1, … as nvidia-smi shows)")
            indices.append(int(part))
    return indices


class ServiceSettings(BaseModel):
    """(params) How the gateway runs inference services (see gateway/service_loop.py)."""

    interval_s: float = Field(default=1.0, gt=0)  # one reconcile pass: status, probes, scale
    health_timeout_s: float = Field(default=2.0, gt=0)
    # a proxied request: the wait for the replica's headers, then each gap between chunks
    request_timeout_s: float = Field(default=60.0, gt=0)
    max_request_bytes: int = Field(default=8 << 20, ge=0)
    max_response_bytes: int = Field(default=32 << 20, ge=0)
    drain_timeout_s: float = Field(default=30.0, ge=0)  # in-flight requests get this long
    load_window_s: float = Field(default=10.0, gt=0)  # the autoscaler averages over this
    lease_horizon_s: float = Field(default=600.0, ge=60)  # a replica's worker is held ahead
    max_replicas_per_tenant: int = Field(default=16, ge=1)
    # A revision whose last this many replicas failed without ever becoming ready (their
    # health.start_timeout_s ran out, or they exited) starts no more until the service is
    # updated: each would be billed for nothing. The service view says so.
    max_unready_replicas: int = Field(default=3, ge=1)


class GatewayNetworkSettings(BaseModel):
    """(params) Tenants' private WireGuard networks (net/wireguard, gateway/networks_api.py).
    Off by default: members' workers need root and wireguard(-go)."""

    enabled: bool = False
    # Where miners send join requests (default http://<host>:<port>).
    public_url: str | None = Field(default=None, max_length=400, pattern=r"^https?://")
    pool: str = "10.200.0.0/13"  # the private range tenant /24s come from
    validity_s: float = Field(default=120.0, gt=0, le=3600)  # a peer set's lifetime in transit
    skew_s: float = Field(default=5.0, ge=0, le=300)  # gateway/worker clock difference allowed
    keepalive_s: int = Field(default=25, ge=0, le=3600)  # towards peers (0: off)
    sweep_interval_s: float = Field(default=10.0, gt=0)  # members of ended leases are dropped


class GatewayHttpSettings(BaseModel):
    """(params) Bounds on what one customer connection may hold of the gateway (REST, SSE,
    exec): its body and headers and how long each may take to arrive, idle keep-alive, the
    number of connections in all, and how soon an open stream notices its key was revoked."""

    max_body_bytes: int = Field(default=8 << 20, ge=1)  # a request body (413 past it)
    body_timeout_s: float = Field(default=30.0, gt=0)  # a whole body must arrive in this (408)
    max_header_bytes: int = Field(default=16 << 10, ge=1024)  # request line and headers
    header_timeout_s: float = Field(default=10.0, gt=0)  # and they must arrive in this
    keep_alive_s: int = Field(default=5, ge=1)  # an idle keep-alive connection is closed
    max_connections: int = Field(default=1000, ge=1)  # past it, new requests get 503
    key_recheck_s: float = Field(default=1.5, gt=0)  # open streams re-check their API key


class GatewaySettings(RoleSettings):
    role: ClassVar[str] = "gateway"
    wallet: WalletSettings = WalletSettings()
    chain: ChainSettings = ChainSettings()
    store: StoreSettings = StoreSettings()
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    # 0 (or None) switches gRPC off: TOML has no null.
    grpc_port: int | None = Field(default=50051, ge=0, le=65535)
    # Prometheus on 127.0.0.1 only, if set: unauthenticated, so never on the public port.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # PEM certificate (chain) and private key: REST and gRPC serve TLS with them. Without
    # them the gateway refuses a non-loopback host (customers' API keys would travel in the
    # clear) unless insecure_public says TLS ends in front of it (a reverse proxy).
    tls_cert: Path | None = None
    tls_key: Path | None = None
    insecure_public: bool = False
    # The unit of every balance, price and cost the gateway keeps and shows, and of its lease
    # receipts: validators refuse receipts in mixed currencies, so every gateway of a network
    # names the same one. Amounts count to 6 decimals (the receipts' micro-units).
    currency: Currency = DEFAULT_CURRENCY
    # (param) price of one GPU of a model per second, and of one CPU core per second
    price_per_gpu_s: dict[str, float] = {"H100": 0.0008, "H200": 0.0011, "A100": 0.0004}
    price_per_cpu_s: float = Field(default=0.00001, ge=0)
    region: str = "local"
    dispatch_interval_s: float = Field(default=0.5, gt=0)
    # A queued job that no worker on offer could run, busy or idle, fails after this long
    # (it waited forever before: e.g. a GPU job on a network of CPU workers).
    unplaceable_timeout_s: float = Field(default=600.0, gt=0)
    metagraph_refresh_s: float = Field(default=10.0, gt=0)
    # Replicas over PostgreSQL: how long the one running the background passes keeps them
    # after its last renewal (a dead one's are taken over within about this long).
    leader_ttl_s: float = Field(default=10.0, ge=1)
    miner_timeout_s: float = Field(default=10.0, gt=0)
    bill_period_s: float = Field(default=60.0, ge=1)  # (param) one lease receipt per period
    # Offer customers only workers that passed a challenge in this window and never cheated.
    verified_window_s: float | None = Field(default=3 * 3600.0, gt=0)  # None: offer all
    services: ServiceSettings = ServiceSettings()
    # (param) output validation: the share of deterministic jobs re-executed on another
    # miner unasked, and how long a validation may wait for other miners before it is dropped
    validation_fraction: float = Field(default=0.05, ge=0, le=1)
    validation_timeout_s: float = Field(default=3600.0, gt=0)
    # (param) lease liveness: how often every active lease is probed, and how long a probe
    # may take before the lease counts as hung
    lease_probe_interval_s: float = Field(default=15.0, gt=0)
    lease_probe_timeout_s: float = Field(default=5.0, gt=0, le=10)
    # The validator's scoring params, for the scores the public network view recomputes.
    scoring: ScoringParams = ScoringParams()
    # Job artifacts kept by the gateway (None: <home>/gateway/artifacts), and at most this
    # many bytes of them per job; files past the limit are rejected with the reason.
    artifacts_dir: Path | None = None
    max_job_artifact_bytes: int = Field(default=256 << 20, ge=0)
    networks: GatewayNetworkSettings = GatewayNetworkSettings()
    http: GatewayHttpSettings = GatewayHttpSettings()

    @model_validator(mode="after")
    def _cert_and_key_together(self) -> GatewaySettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: give both or neither")
        return self

    @property
    def artifacts_path(self) -> Path:
        return self.artifacts_dir or self.home / "gateway" / "artifacts"


S = TypeVar("S", bound="RoleSettings")

ROLES: dict[str, type[RoleSettings]] = {
    cls.role: cls
    for cls in (
        ChainServiceSettings,
        ValidatorSettings,
        MinerSettings,
        WorkerSettings,
        GatewaySettings,
    )
}


def _read_toml(path: Path, role: str) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}", reason="config_missing") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}", reason="config_syntax") from None
    table = data.get(role)
    if isinstance(table, dict):
        return table
    # A file without role tables configures the role directly, but must not
    # carry other roles' tables (those would be silent typos).
    return {k: v for k, v in data.items() if k not in ROLES}


def describe_validation_error(exc: ValidationError) -> str:
    """One line naming the first bad field, e.g. ``store.url: …``."""
    first = exc.errors()[0]
    field = ".".join(str(p) for p in first["loc"]) or "<root>"
    return f"{field}: {first['msg']}"


def load_settings(cls: type[S], config_path: Path | None = None, **overrides: Any) -> S:
    """Build a role's settings from overrides, env, the TOML file and defaults.

    Raises :class:`ConfigError` with one line naming the field on any problem.
    """
    data = _read_toml(config_path, cls.role) if config_path is not None else {}
    cls._toml_data = data
    try:
        return cls(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc), reason="config_invalid") from None
    finally:
        cls._toml_data = {}
