"""Least-outstanding picks and the replica health state machine."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.gateway.serving.balancer import Candidate, pick
from byteleap.gateway.serving.health import (
    PHASE_TRANSITIONS,
    IllegalPhase,
    Phase,
    observe_endpoint,
    observe_probe,
    observe_refused,
    overdue,
    pending,
)
from byteleap.protocol.service_spec import HealthSpec

candidates = st.lists(
    st.builds(
        Candidate, st.text("abc", min_size=1, max_size=3), st.integers(0, 9), st.integers(0, 9)
    ),
    max_size=6,
)


@given(candidates, st.sets(st.text("abc", min_size=1, max_size=3)))
def test_the_pick_has_the_fewest_outstanding_and_is_never_excluded(
    cs: list[Candidate], exclude: set[str]
) -> None:
    chosen = pick(cs, exclude=exclude)
    allowed = [c for c in cs if c.replica_id not in exclude]
    if not allowed:
        assert chosen is None
        return
    assert chosen is not None and chosen not in exclude
    fewest = min(c.outstanding for c in allowed)
    assert any(c.replica_id == chosen and c.outstanding == fewest for c in allowed)


def test_equally_busy_replicas_take_turns() -> None:
    served = {"a": 0, "b": 0, "c": 0}
    for _ in range(9):
        chosen = pick([Candidate(r, 0, n) for r, n in served.items()])
        assert chosen is not None
        served[chosen] += 1
    assert served == {"a": 3, "b": 3, "c": 3}


SPEC = HealthSpec(healthy_threshold=2, unhealthy_threshold=2, start_timeout_s=10)


def test_a_replica_becomes_ready_after_enough_passes_and_leaves_after_enough_failures() -> None:
    h = observe_endpoint(pending(0.0), 1.0)
    assert h.phase is Phase.STARTING
    h = observe_probe(h, True, 2.0, SPEC)
    assert h.phase is Phase.STARTING
    h = observe_probe(h, True, 3.0, SPEC)
    assert h.phase is Phase.READY
    h = observe_probe(h, False, 4.0, SPEC)
    assert h.phase is Phase.READY
    h = observe_probe(observe_probe(h, True, 5.0, SPEC), False, 6.0, SPEC)
    assert h.phase is Phase.READY  # failures must be consecutive
    h = observe_probe(h, False, 7.0, SPEC)
    assert h.phase is Phase.UNHEALTHY and h.since == 7.0
    h = observe_probe(observe_probe(h, True, 8.0, SPEC), True, 9.0, SPEC)
    assert h.phase is Phase.READY


def test_a_refused_connection_takes_a_ready_replica_out_at_once() -> None:
    h = observe_probe(observe_endpoint(pending(0.0), 0.0), True, 1.0, HealthSpec())
    assert h.phase is Phase.READY
    assert observe_refused(h, 2.0).phase is Phase.UNHEALTHY


def test_a_replica_that_never_turns_healthy_is_overdue() -> None:
    h = observe_endpoint(pending(0.0), 1.0)
    assert not overdue(h, 10.9, SPEC)
    assert overdue(h, 11.0, SPEC)


def test_ended_phases_go_nowhere() -> None:
    h = pending(0.0).to(Phase.FAILED, 1.0)
    assert h.phase.is_terminal
    with pytest.raises(IllegalPhase):
        h.to(Phase.READY, 2.0)
    assert all(not PHASE_TRANSITIONS[p] for p in Phase if p.is_terminal)
    assert observe_probe(h, True, 3.0, SPEC) is h
