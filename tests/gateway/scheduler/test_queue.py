"""The fair queue: round robin across tenants, FIFO within one, bounds, cancel, no HOL blocking."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byteleap.gateway.scheduler import FairQueue, QueuedJob, QueueFull, SchedulerError, UnknownJob


def drain(queue: FairQueue[int]) -> list[QueuedJob[int]]:
    out = []
    while (job := queue.dequeue()) is not None:
        out.append(job)
    return out


def test_a_tenant_with_one_job_is_served_within_the_first_two() -> None:
    queue: FairQueue[int] = FairQueue()
    for i in range(100):
        queue.enqueue("A", f"a{i}", i)
    queue.enqueue("B", "b0", 0)
    first_two = [queue.dequeue(), queue.dequeue()]
    assert "b0" in [job.job_id for job in first_two if job]
    rest = drain(queue)
    assert [job.job_id for job in rest] == [f"a{i}" for i in range(1, 100)]


def test_fifo_within_a_tenant_and_round_robin_across() -> None:
    queue: FairQueue[int] = FairQueue()
    for tenant, n in (("A", 3), ("B", 2), ("C", 1)):
        for i in range(n):
            queue.enqueue(tenant, f"{tenant}{i}", i)
    assert [job.job_id for job in drain(queue)] == ["A0", "B0", "C0", "A1", "B1", "A2"]
    assert len(queue) == 0


def test_weights_give_tenants_more_turns() -> None:
    queue: FairQueue[int] = FairQueue(weights={"A": 3})
    for i in range(10):
        queue.enqueue("A", f"a{i}", i)
        queue.enqueue("B", f"b{i}", i)
    order = [job.tenant for job in drain(queue)[:8]]
    assert order == ["A", "A", "A", "B", "A", "A", "A", "B"]


def test_set_weight_applies_from_the_next_turn() -> None:
    queue: FairQueue[int] = FairQueue()
    for i in range(6):
        queue.enqueue("A", f"a{i}", i)
        queue.enqueue("B", f"b{i}", i)
    assert queue.dequeue().tenant == "A"  # type: ignore[union-attr]
    queue.set_weight("A", 2)
    assert [job.tenant for job in drain(queue)[:5]] == ["B", "A", "A", "B", "A"]


def test_unplaceable_jobs_block_no_other_tenant() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.enqueue("A", "a-big", "8xH100")
    queue.enqueue("B", "b-small", "1xL4")
    job = queue.next_placeable(lambda j: j.item != "8xH100")
    assert job is not None and job.job_id == "b-small"
    assert "a-big" in queue and queue.depth("A") == 1


def test_an_unplaceable_head_lets_the_same_tenants_next_job_through() -> None:
    queue: FairQueue[str] = FairQueue()
    queue.enqueue("A", "a-big", "big")
    queue.enqueue("A", "a-small", "small")
    job = queue.next_placeable(lambda j: j.item == "small")
    assert job is not None and job.job_id == "a-small"
    assert [j.job_id for j in queue] == ["a-big"]


def test_nothing_placeable_returns_none_and_keeps_every_job() -> None:
    queue: FairQueue[int] = FairQueue()
    for i in range(3):
        queue.enqueue(f"T{i}", f"j{i}", i)
    seen: list[str] = []

    def never(job: QueuedJob[int]) -> bool:
        seen.append(job.job_id)
        return False

    assert queue.next_placeable(never) is None
    assert sorted(seen) == ["j0", "j1", "j2"]
    assert [j.job_id for j in queue] == ["j0", "j1", "j2"]
    assert queue.next_placeable(lambda j: True) is not None


def test_a_tenant_that_cannot_place_loses_its_turn_not_its_place() -> None:
    queue: FairQueue[int] = FairQueue()
    for i in range(3):
        queue.enqueue("A", f"a{i}", i)
        queue.enqueue("B", f"b{i}", i)
    assert queue.next_placeable(lambda j: j.tenant == "B").job_id == "b0"  # type: ignore[union-attr]
    assert [queue.dequeue().job_id for _ in range(3)] == ["a0", "b1", "a1"]  # type: ignore[union-attr]


def test_bound_per_tenant_raises_queue_full_with_reason() -> None:
    queue: FairQueue[int] = FairQueue(max_per_tenant=2)
    queue.enqueue("A", "a0", 0)
    queue.enqueue("A", "a1", 1)
    with pytest.raises(QueueFull) as full:
        queue.enqueue("A", "a2", 2)
    assert full.value.reason == "tenant_queue_full"
    assert full.value.context == {"tenant": "A", "limit": 2}
    queue.enqueue("B", "b0", 0)  # other tenants are unaffected
    queue.enqueue("A", "a-retry", 9, front=True)  # an admitted job coming back is never refused
    assert [j.job_id for j in queue if j.tenant == "A"] == ["a-retry", "a0", "a1"]


def test_cancel_by_job_id() -> None:
    queue: FairQueue[int] = FairQueue()
    queue.enqueue("A", "a0", 0)
    queue.enqueue("A", "a1", 1)
    queue.enqueue("B", "b0", 0)
    assert queue.cancel("a0").job_id == "a0"
    assert queue.cancel("b0").tenant == "B"
    assert "b0" not in queue and queue.depth("B") == 0
    with pytest.raises(UnknownJob) as unknown:
        queue.cancel("b0")
    assert unknown.value.reason == "unknown_job"
    assert [j.job_id for j in drain(queue)] == ["a1"]


def test_duplicate_ids_and_bad_settings_are_errors() -> None:
    queue: FairQueue[int] = FairQueue()
    queue.enqueue("A", "x", 0)
    with pytest.raises(SchedulerError) as dup:
        queue.enqueue("B", "x", 0)
    assert dup.value.reason == "duplicate_job"
    for bad in (0, -1, True):
        with pytest.raises(SchedulerError) as weight:
            FairQueue(weights={"A": bad})
        assert weight.value.reason == "bad_weight"
    with pytest.raises(SchedulerError):
        FairQueue(max_per_tenant=0)


tenant_jobs = st.lists(st.sampled_from("ABCDE"), max_size=60)


@settings(max_examples=150, deadline=None)
@given(arrivals=tenant_jobs)
def test_equal_tenants_never_wait_two_turns_and_order_is_fifo(arrivals: list[str]) -> None:
    queue: FairQueue[int] = FairQueue()
    for i, tenant in enumerate(arrivals):
        queue.enqueue(tenant, f"j{i}", i)
    served = drain(queue)
    assert sorted(j.item for j in served) == list(range(len(arrivals)))
    for tenant in set(arrivals):
        items = [j.item for j in served if j.tenant == tenant]
        assert items == sorted(items)
    # Between two services of one tenant, no other tenant that still had jobs is skipped.
    left = Counter(arrivals)
    last_turn: dict[str, int] = {}
    for step, job in enumerate(served):
        if job.tenant in last_turn:
            waiting = [t for t, n in left.items() if n > 0 and t != job.tenant]
            assert all(last_turn.get(t, -1) > last_turn[job.tenant] for t in waiting)
        last_turn[job.tenant] = step
        left[job.tenant] -= 1


@settings(max_examples=100, deadline=None)
@given(arrivals=tenant_jobs, blocked=st.sets(st.sampled_from("ABCDE")))
def test_next_placeable_only_returns_placeable_jobs(arrivals: list[str], blocked: set[str]) -> None:
    queue: FairQueue[int] = FairQueue()
    for i, tenant in enumerate(arrivals):
        queue.enqueue(tenant, f"j{i}", i)
    taken = []
    while (job := queue.next_placeable(lambda j: j.tenant not in blocked)) is not None:
        taken.append(job)
    assert all(j.tenant not in blocked for j in taken)
    assert len(taken) == sum(t not in blocked for t in arrivals)
    assert len(queue) == sum(t in blocked for t in arrivals)
