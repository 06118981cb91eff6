"""The rollout planner: bounds hold in every step and every plan converges."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byteleap.gateway.serving.rollout import Slot, plan

slots = st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=8).map(
    lambda xs: [Slot(f"r{i}", rev, ready) for i, (rev, ready) in enumerate(xs)]
)
surge_unavailable = st.tuples(st.integers(0, 3), st.integers(0, 3)).filter(lambda t: any(t))


@given(slots, st.integers(0, 6), surge_unavailable)
def test_a_step_never_drops_ready_replicas_below_the_floor_nor_surges_past_the_ceiling(
    live: list[Slot], desired: int, bounds: tuple[int, int]
) -> None:
    surge, unavailable = bounds
    step = plan(desired, 2, live, max_surge=surge, max_unavailable=unavailable)
    stopped = set(step.stop)
    assert stopped <= {s.replica_id for s in live} and len(stopped) == len(step.stop)
    ready_before = sum(s.ready for s in live)
    ready_after = sum(s.ready for s in live if s.replica_id not in stopped)
    assert ready_after >= min(ready_before, max(0, desired - unavailable))
    if step.start:
        assert len(live) - len(stopped) + step.start <= desired + surge
    current_kept = sum(1 for s in live if s.revision == 2 and s.replica_id not in stopped)
    assert current_kept + step.start <= max(desired, current_kept)


@settings(max_examples=200)
@given(slots, st.integers(1, 6), surge_unavailable)
def test_repeated_steps_reach_desired_replicas_of_the_new_revision(
    live: list[Slot], desired: int, bounds: tuple[int, int]
) -> None:
    surge, unavailable = bounds
    ids = itertools.count(100)
    floor = max(0, desired - unavailable)
    for _ in range(40):
        step = plan(desired, 2, live, max_surge=surge, max_unavailable=unavailable)
        if not step.start and not step.stop and all(s.ready for s in live):
            break
        ready_before = sum(s.ready for s in live)
        live = [s for s in live if s.replica_id not in step.stop]
        assert sum(s.ready for s in live) >= min(ready_before, floor)
        live += [Slot(f"r{next(ids)}", 2, False) for _ in range(step.start)]
        live = [Slot(s.replica_id, s.revision, True) for s in live]  # they all turn healthy
    assert len(live) == desired and all(s.revision == 2 and s.ready for s in live)


def test_a_surge_of_one_rolls_two_replicas_one_at_a_time() -> None:
    live = [Slot("a", 1, True), Slot("b", 1, True)]
    assert plan(2, 2, live, max_surge=1, max_unavailable=0) == _step(1)
    live.append(Slot("c", 2, False))
    assert plan(2, 2, live, max_surge=1, max_unavailable=0) == _step(0)  # wait for c
    live[2] = Slot("c", 2, True)
    assert plan(2, 2, live, max_surge=1, max_unavailable=0) == _step(1, "a")


def test_without_surge_an_old_replica_goes_first() -> None:
    live = [Slot("a", 1, True), Slot("b", 1, True)]
    assert plan(2, 2, live, max_surge=0, max_unavailable=1) == _step(1, "a")


def test_scale_in_drops_unready_then_newest() -> None:
    live = [Slot("a", 1, True), Slot("b", 1, False), Slot("c", 1, True)]
    assert plan(1, 1, live, max_surge=1, max_unavailable=0) == _step(0, "b", "c")


def test_a_lost_replica_is_replaced() -> None:
    assert plan(3, 1, [Slot("a", 1, True)], max_surge=1, max_unavailable=0) == _step(2)


def test_negative_inputs_are_refused() -> None:
    with pytest.raises(ValueError):
        plan(-1, 1, [], max_surge=1, max_unavailable=0)


def _step(start: int, *stop: str) -> object:
    from byteleap.gateway.serving.rollout import Step

    return Step(start=start, stop=stop)
