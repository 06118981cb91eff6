"""A replica's health as the gateway sees it: a small state machine fed by probes.

    pending ──endpoint──▶ starting ──healthy×h──▶ ready ◀──healthy×h── unhealthy
       │                     │                      └──failed×u (or a refused connection)──▶┘
       └──── start timeout ──┴────────▶ failed                     unhealthy too long ─▶ failed
    any live phase ──drain──▶ draining ──▶ stopped

Only ``ready`` replicas get traffic. ``h`` and ``u`` are the spec's healthy and unhealthy
thresholds; one refused connection (``observe_refused``) takes a replica out of rotation at
once, because the proxy has just seen it gone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from byteleap.cloud.services.spec import HealthSpec


class Phase(StrEnum):
    PENDING = "pending"
    STARTING = "starting"
    READY = "ready"
    UNHEALTHY = "unhealthy"
    DRAINING = "draining"
    STOPPED = "stopped"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return not PHASE_TRANSITIONS[self]

    @property
    def is_live(self) -> bool:
        """Counts towards the service's replicas (not on its way out)."""
        return self in (Phase.PENDING, Phase.STARTING, Phase.READY, Phase.UNHEALTHY)


_P = Phase
_OUT = frozenset({_P.DRAINING, _P.STOPPED, _P.FAILED})
PHASE_TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    _P.PENDING: frozenset({_P.STARTING}) | _OUT,
    _P.STARTING: frozenset({_P.READY}) | _OUT,
    _P.READY: frozenset({_P.UNHEALTHY}) | _OUT,
    _P.UNHEALTHY: frozenset({_P.READY}) | _OUT,
    _P.DRAINING: frozenset({_P.STOPPED, _P.FAILED}),
    _P.STOPPED: frozenset(),
    _P.FAILED: frozenset(),
}


class IllegalPhase(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Health:
    phase: Phase
    since: float  # when the phase was entered
    passes: int = 0  # consecutive passed probes
    fails: int = 0  # consecutive failed probes

    def to(self, phase: Phase, now: float) -> Health:
        if phase is self.phase:
            return self
        if phase not in PHASE_TRANSITIONS[self.phase]:
            raise IllegalPhase(f"{self.phase} -> {phase}")
        return Health(phase, now)


def pending(now: float) -> Health:
    return Health(Phase.PENDING, now)


def observe_endpoint(h: Health, now: float) -> Health:
    return h.to(Phase.STARTING, now) if h.phase is Phase.PENDING else h


def observe_probe(h: Health, ok: bool, now: float, spec: HealthSpec) -> Health:
    """One health check's result."""
    if h.phase not in (Phase.STARTING, Phase.READY, Phase.UNHEALTHY):
        return h  # pending has nothing to probe; draining and the ends no longer matter
    if ok:
        h = replace(h, passes=h.passes + 1, fails=0)
        if h.phase is not Phase.READY and h.passes >= spec.healthy_threshold:
            return h.to(Phase.READY, now)
        return h
    h = replace(h, passes=0, fails=h.fails + 1)
    if h.phase is Phase.READY and h.fails >= spec.unhealthy_threshold:
        return replace(h.to(Phase.UNHEALTHY, now), fails=h.fails)
    return h


def observe_refused(h: Health, now: float) -> Health:
    """The proxy could not connect: out of rotation now, the probes decide what follows."""
    if h.phase is Phase.READY:
        return h.to(Phase.UNHEALTHY, now)
    return h


def overdue(h: Health, now: float, spec: HealthSpec) -> bool:
    """Whether the replica should be given up on and replaced: it never became healthy in
    ``start_timeout_s``, or stayed unhealthy that long."""
    if h.phase in (Phase.PENDING, Phase.STARTING, Phase.UNHEALTHY):
        return now - h.since >= spec.start_timeout_s
    return False
