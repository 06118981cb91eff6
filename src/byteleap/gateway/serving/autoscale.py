"""How many replicas a service should run, from its load: a pure decision with memory.

The wish of each target is proportional: ``ceil(in_flight / target_in_flight)`` and
``ceil(current × p90_latency / target_latency_ms)``; within ``tolerance`` of a target the
current count stands (hysteresis), and the larger wish wins, clamped to [min, max].

Scaling out happens at most every ``scale_out_cooldown_s``. Scaling in needs the wish to stay
below the current count for ``scale_in_cooldown_s`` without a break, and then goes to the
largest wish seen in that stretch, so one quiet moment never drops capacity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from byteleap.protocol.service_spec import AutoscaleSpec


@dataclass(frozen=True, slots=True)
class Load:
    in_flight: float  # requests in flight (averaged over the last interval)
    latency_p90_ms: float | None = None  # None: no request finished lately


@dataclass(frozen=True, slots=True)
class ScalerMemory:
    last_change_at: float = -math.inf
    low_since: float | None = None  # when the wish first fell below the current count
    low_peak: int = 0  # the largest wish since then


@dataclass(frozen=True, slots=True)
class Decision:
    desired: int
    memory: ScalerMemory
    reason: str


def _proportional(current: int, ratio: float, tolerance: float) -> int:
    if abs(ratio - 1.0) <= tolerance:
        return current
    return math.ceil(current * ratio - 1e-9)


def wish(policy: AutoscaleSpec, current: int, load: Load) -> int:
    """What the targets ask for now, before cooldowns, clamped to the bounds."""
    current = max(current, 1)
    wishes = [policy.min_replicas]
    if policy.target_in_flight is not None:
        ratio = load.in_flight / (current * policy.target_in_flight)
        wishes.append(_proportional(current, ratio, policy.tolerance))
    if policy.target_latency_ms is not None and load.latency_p90_ms is not None:
        ratio = load.latency_p90_ms / policy.target_latency_ms
        wishes.append(_proportional(current, ratio, policy.tolerance))
    return max(policy.min_replicas, min(policy.max_replicas, max(wishes)))


def decide(
    policy: AutoscaleSpec, current: int, load: Load, memory: ScalerMemory, now: float
) -> Decision:
    bounded = max(policy.min_replicas, min(policy.max_replicas, current))
    if bounded != current:  # the bounds changed: follow them at once
        return Decision(bounded, ScalerMemory(last_change_at=now), "bounds")
    wanted = wish(policy, current, load)
    if wanted > current:
        if now - memory.last_change_at < policy.scale_out_cooldown_s:
            return Decision(current, ScalerMemory(memory.last_change_at), "scale-out cooldown")
        return Decision(wanted, ScalerMemory(last_change_at=now), "scale out")
    if wanted == current:
        return Decision(current, ScalerMemory(memory.last_change_at), "steady")
    if memory.low_since is None:
        return Decision(current, ScalerMemory(memory.last_change_at, now, wanted), "load fell")
    peak = max(memory.low_peak, wanted)
    if now - memory.low_since < policy.scale_in_cooldown_s:
        kept = ScalerMemory(memory.last_change_at, memory.low_since, peak)
        return Decision(current, kept, "scale-in cooldown")
    return Decision(peak, ScalerMemory(last_change_at=now), "scale in")
