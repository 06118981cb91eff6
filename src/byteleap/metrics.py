"""Prometheus metrics, one registry per process, named ``byteleap_<role>_…``.

The gateway mounts `asgi_app()` at ``/metrics``; the validator and the miner expose the same
registry on ``metrics_port`` (127.0.0.1) when one is configured — the miner's TLS port is
public and unauthenticated routes there would tell anyone its workers' states. The
worker serves nothing: its miner's metrics count its jobs and states.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_asgi_app
from prometheus_client import start_http_server as _start_http_server

REGISTRY = CollectorRegistry(auto_describe=True)

# validator
CHALLENGES = Counter(
    "byteleap_validator_challenges",
    "Challenges the validator finished, by outcome",
    ["status"],
    registry=REGISTRY,
)
ROUND_SECONDS = Histogram(
    "byteleap_validator_round_seconds", "Duration of one challenge round", registry=REGISTRY
)
ROUND_SKEW_SECONDS = Histogram(
    "byteleap_validator_round_skew_seconds",
    "Spread of one round's batch sends across miners (first to last)",
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
    registry=REGISTRY,
)
MINERS_UNREACHABLE = Counter(
    "byteleap_validator_miner_errors",
    "Miners that failed a round, by reason",
    ["reason"],
    registry=REGISTRY,
)
WEIGHTS_SET = Counter(
    "byteleap_validator_weights", "Weight submissions, by result", ["result"], registry=REGISTRY
)

# miner
WORKERS = Gauge(
    "byteleap_miner_workers", "Workers in the registry, by state", ["state"], registry=REGISTRY
)
MINER_REQUESTS = Counter(
    "byteleap_miner_requests",
    "Validator and gateway requests, by route and status",
    ["route", "status"],
    registry=REGISTRY,
)
JOBS_ENDED = Counter(
    "byteleap_miner_jobs", "Jobs that ended on this miner, by state", ["state"], registry=REGISTRY
)

MINER_REQUEST_SECONDS = Histogram(
    "byteleap_miner_request_seconds",
    "Latency of validator and gateway requests, by route",
    ["route"],
    registry=REGISTRY,
)
WORKER_CHALLENGES = Counter(
    "byteleap_worker_challenges",
    "Challenges this worker answered, by outcome (committed, revealed, aborted)",
    ["outcome"],
    registry=REGISTRY,
)
WORKER_SOLVE_SECONDS = Histogram(
    "byteleap_worker_solve_seconds",
    "Generate, multiply, encode and commit one challenge",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
WORKER_CONNECTED = Gauge(
    "byteleap_worker_connected", "1 while the link to the miner is up", registry=REGISTRY
)
for _outcome in ("committed", "revealed", "aborted"):  # every series from the start
    WORKER_CHALLENGES.labels(_outcome)

CHALLENGE_SECONDS = Histogram(
    "byteleap_validator_challenge_seconds",
    "One challenge from issue to verdict (commit, reveal and verification), by outcome",
    ["status"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=REGISTRY,
)

# gateway
GATEWAY_REQUESTS = Counter(
    "byteleap_gateway_requests",
    "Customer and network API requests, by method, route and status",
    ["method", "route", "status"],
    registry=REGISTRY,
)
GATEWAY_REQUEST_SECONDS = Histogram(
    "byteleap_gateway_request_seconds",
    "Customer and network API latency, by method and route",
    ["method", "route"],
    registry=REGISTRY,
)
GATEWAY_ERRORS = Counter(
    "byteleap_gateway_errors",
    "Error answers of the gateway API, by reason",
    ["reason"],
    registry=REGISTRY,
)
GATEWAY_JOBS = Counter(
    "byteleap_gateway_jobs", "Jobs that ended, by state", ["state"], registry=REGISTRY
)
GATEWAY_JOB_START_SECONDS = Histogram(
    "byteleap_gateway_job_start_seconds",
    "From a job's submission to its attempt running on a worker",
    registry=REGISTRY,
)
GATEWAY_JOB_SECONDS = Histogram(
    "byteleap_gateway_job_seconds",
    "Billed running time of jobs that ended",
    buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
    registry=REGISTRY,
)
GATEWAY_LEASES = Counter(
    "byteleap_gateway_leases",
    "Lease events: created, or ended as released, expired or failed",
    ["event"],
    registry=REGISTRY,
)


def asgi_app() -> object:
    return make_asgi_app(registry=REGISTRY)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    _start_http_server(port, addr=host, registry=REGISTRY)
