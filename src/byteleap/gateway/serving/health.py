"""A replica's health as the gateway sees it: a small state machine fed by probes.

    pending ──endpoint──▶ starting ──healthy×h──▶ ready ◀──healthy×h── unhealthy
       │                     │                      └──failed×u (or a refused connection)──▶┘
       └──── start timeout ──┴────────▶ failed                     unhealthy too long ─▶ failed
    any live phase ──drain──▶ draining ──▶ stopped

Only ``ready`` replicas get traffic. ``h`` and ``u`` are the spec's healthy and unhealthy
thresholds; one refused connection (``observe_refused``) takes a replica out of rotation at
once, because the proxy has just seen it gone.

A replica given up on before it was ever ready fails with a ``never ready:`` error and is
billed up to its `deadline`, no further; a revision whose last few replicas all failed so
starts no more of them (`stall_reason`), since each would be billed for nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from byteleap.protocol.service_spec import HealthSpec


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


def deadline(h: Health, spec: HealthSpec) -> float | None:
    """When the replica is given up on unless it turns healthy first: ``start_timeout_s``
    into pending (no endpoint yet), starting (no healthy probe yet) or unhealthy; None for
    the other phases. It is billed no further than this."""
    if h.phase in (Phase.PENDING, Phase.STARTING, Phase.UNHEALTHY):
        return h.since + spec.start_timeout_s
    return None


def overdue(h: Health, now: float, spec: HealthSpec) -> bool:
    """Whether the replica should be given up on and replaced: it never became healthy in
    ``start_timeout_s``, or stayed unhealthy that long."""
    end = deadline(h, spec)
    return end is not None and now >= end


#: How a replica's error starts when it ended without ever being ready (`stall_reason` counts
#: them). After a gateway restart a replica is followed from pending again, so one that was
#: ready before it and fails before its next healthy probe counts as never ready too.
NEVER_READY = "never ready: "


def never_ready(h: Health) -> bool:
    """Not ready since this gateway first saw it (unhealthy means it was ready once)."""
    return h.phase in (Phase.PENDING, Phase.STARTING)


def give_up_reason(h: Health, spec: HealthSpec) -> str:
    """Why an `overdue` replica is given up on, as its tenant reads it."""
    wait = f"{spec.start_timeout_s:g} s"
    if h.phase is Phase.PENDING:
        return f"{NEVER_READY}its worker reported no endpoint within {wait}"
    if h.phase is Phase.STARTING:
        return f"{NEVER_READY}GET {spec.path} answered no 2xx within {wait} of its start"
    return f"unhealthy for {wait} (GET {spec.path} failing)"


def stall_reason(
    revision: int, failures: Sequence[str | None], ready_now: bool, limit: int
) -> str | None:
    """Why a service starts no more replicas of ``revision``: none of them is ready now and
    its last ``limit`` failed ones (``failures``: their errors, newest first) all ended never
    ready, so another would only be billed for the same; None when it may go on."""
    recent = list(failures[:limit])
    if ready_now or len(recent) < limit or limit < 1:
        return None
    if not all(e is not None and e.startswith(NEVER_READY) for e in recent):
        return None
    last = (recent[0] or "").removeprefix(NEVER_READY)
    return (
        f"revision {revision}: its last {limit} replicas never became ready (the last: "
        f"{last}); no more are started, and nothing more billed, until the service is updated"
    )
