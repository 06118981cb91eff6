"""Inference services: the pure decisions under the gateway's service desk.

No I/O here. ``spec`` holds what customers send and see; ``health`` a replica's health state
machine; ``balancer`` the least-outstanding-requests pick; ``autoscale`` how many replicas a
load asks for (cooldowns, hysteresis); ``rollout`` the step towards the desired replicas of
the current revision (max surge / max unavailable), which also scales and replaces.
"""

from byteleap.gateway.serving.autoscale import Decision, Load, ScalerMemory, decide, wish
from byteleap.gateway.serving.balancer import Candidate, pick
from byteleap.gateway.serving.health import Health, Phase, observe_probe
from byteleap.gateway.serving.rollout import Slot, Step, plan
from byteleap.protocol.service_spec import (
    AutoscaleSpec,
    HealthSpec,
    ReplicaState,
    ReplicaView,
    RolloutSpec,
    ServiceScale,
    ServiceSpec,
    ServiceState,
    ServiceUpdate,
    ServiceView,
)

__all__ = [
    "AutoscaleSpec",
    "Candidate",
    "Decision",
    "Health",
    "HealthSpec",
    "Load",
    "Phase",
    "ReplicaState",
    "ReplicaView",
    "RolloutSpec",
    "ScalerMemory",
    "ServiceScale",
    "ServiceSpec",
    "ServiceState",
    "ServiceUpdate",
    "ServiceView",
    "Slot",
    "Step",
    "decide",
    "observe_probe",
    "pick",
    "plan",
    "wish",
]
