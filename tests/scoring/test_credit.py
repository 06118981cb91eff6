"""The batch credit rule: whatever order, sharing or refusals a miner chooses, the credit of a
batch never exceeds the hardware that computed it."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.scoring.credit import batch_credit


def _sequential_finishes(works: list[float], flops: float, gaps: list[float]) -> list[float]:
    """One device serving its items one after another, idling ``gaps[i]`` before item i."""
    t, finishes = 0.0, []
    for work, gap in zip(works, gaps, strict=True):
        t += gap + work / flops
        finishes.append(t)
    return finishes


def _shared_finishes(works: list[float], flops: float) -> list[float]:
    """One device splitting itself evenly over every unfinished item (processor sharing)."""
    order = sorted(range(len(works)), key=lambda i: works[i])
    finishes = [0.0] * len(works)
    t, done, left = 0.0, 0.0, len(works)
    for i in order:
        t += (works[i] - done) * left / flops
        done = works[i]
        finishes[i] = t
        left -= 1
    return finishes


items = st.lists(
    st.tuples(
        st.floats(min_value=1e3, max_value=1e9),  # work
        st.floats(min_value=0.0, max_value=2.0),  # idle gap before it
        st.booleans(),  # refused (never committed) rather than answered
        st.floats(min_value=0.0, max_value=0.5),  # delay before the miner reports it
    ),
    min_size=1,
    max_size=40,
)


@given(
    devices=st.lists(st.tuples(st.floats(1e4, 1e8), items, st.booleans()), min_size=1, max_size=6),
)
def test_a_batch_is_never_credited_more_than_its_hardware(
    devices: list[tuple[float, list[tuple[float, float, bool, float]], bool]],
) -> None:
    passed_works, arrivals = [], []
    for flops, served, shared in devices:
        works = [w for w, _, _, _ in served]
        if shared:
            finishes = _shared_finishes(works, flops)
        else:
            finishes = _sequential_finishes(works, flops, [g for _, g, _, _ in served])
        for (work, _, refused, delay), finish in zip(served, finishes, strict=True):
            if not refused:
                passed_works.append(work)
                arrivals.append(finish + delay)
    if not passed_works:
        return
    credited = batch_credit(passed_works, max(arrivals))
    hardware = math.fsum(flops for flops, _, _ in devices)
    assert math.fsum(credited) <= hardware * (1 + 1e-9)


def test_one_device_behind_a_hundred_workers_is_credited_as_one() -> None:
    flops, work = 1e12, 2e12  # two seconds a challenge
    finishes = _sequential_finishes([work] * 100, flops, [0.0] * 100)
    assert math.fsum(batch_credit([work] * 100, finishes[-1])) == pytest.approx(flops)
    # Parking: answer one, refuse the other 99 — still one device's worth, and 99 failures.
    assert math.fsum(batch_credit([work], finishes[0])) == pytest.approx(flops)


def test_honest_parallel_devices_keep_their_throughput() -> None:
    # Eight GPUs, one challenge each, sized to take the same time: each is credited its own.
    credited = batch_credit([2e12] * 8, 2.0)
    assert credited == [pytest.approx(1e12)] * 8


@pytest.mark.parametrize("elapsed", [0.0, -1.0, math.inf, math.nan])
def test_a_batch_needs_a_positive_time(elapsed: float) -> None:
    with pytest.raises(ValueError):
        batch_credit([1.0], elapsed)
