"""Prometheus metrics, one registry per process, named ``byteleap_<role>_…``.

Servers mount `asgi_app()` at ``/metrics``; the validator, which serves no HTTP,
exposes the same registry on ``metrics_port`` when one is configured.
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


def asgi_app() -> object:
    return make_asgi_app(registry=REGISTRY)


def serve_metrics(port: int, host: str = "127.0.0.1") -> None:
    _start_http_server(port, addr=host, registry=REGISTRY)
