"""What the gateway keeps in memory of its services beyond their records: each replica's health
and requests in flight, and each service's recent load. Rebuilt after a restart (replicas
come back as starting and turn ready on their next probes)."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from byteleap.gateway.serving import health as hs
from byteleap.gateway.serving.autoscale import Load, ScalerMemory


@dataclass
class LiveReplica:
    """What the gateway knows of a replica beyond its record."""

    id: str
    service_id: str
    health: hs.Health
    alive_at: float  # the miner last said it runs
    endpoint: str | None = None
    outstanding: int = 0
    served: int = 0
    drain_from: float | None = None


@dataclass
class ServiceLoad:
    memory: ScalerMemory = field(default_factory=ScalerMemory)
    in_flight: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=10_000))
    latency_ms: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=10_000))
    stalled: str | None = None  # why no more replicas are started, as last logged

    def over(self, now: float, window_s: float) -> Load:
        for samples in (self.in_flight, self.latency_ms):
            while samples and samples[0][0] < now - window_s:
                samples.popleft()
        flights = [n for _, n in self.in_flight]
        latencies = sorted(ms for _, ms in self.latency_ms)
        p90 = latencies[int(0.9 * (len(latencies) - 1))] if latencies else None
        return Load(in_flight=sum(flights) / len(flights) if flights else 0.0, latency_p90_ms=p90)
