"""A dispatch pass picks exactly what `place` would over the workers still free."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from byteleap.gateway.scheduler import NoPlacement, Requirements, WorkerOffer, WorkerState, place
from byteleap.gateway.scheduler.placement_pass import PlacementPass
from gateway.scheduler.test_placement_properties import offer_lists, requirement_sets


@settings(max_examples=200, deadline=None)
@given(
    offers=offer_lists(),
    jobs=st.lists(
        st.tuples(
            requirement_sets(),
            st.sets(st.integers(min_value=0, max_value=11), max_size=3),
            st.dictionaries(st.sampled_from(["m0", "m1", "m2", "m3"]), st.integers(0, 3)),
        ),
        max_size=8,
    ),
)
def test_a_pass_matches_place_over_the_offers_left(
    offers: list[WorkerOffer],
    jobs: list[tuple[Requirements, set[int], dict[str, int]]],
) -> None:
    placer = PlacementPass(list(offers))
    free = {o.key: o for o in offers}
    for requirements, excluded, spread in jobs:
        exclude = {("m0", f"w{i}") for i in excluded} | {
            o.key for o in offers if int(o.worker_id[1:]) in excluded
        }
        expected = place(requirements, list(free.values()), exclude=exclude, spread=spread)
        got = placer.place(requirements, exclude=exclude, spread=spread)
        if isinstance(expected, NoPlacement):
            assert isinstance(got, NoPlacement)
            assert {r.key for r in got.rejections} == {r.key for r in expected.rejections}
            continue
        assert not isinstance(got, NoPlacement)
        assert got == expected  # the same worker, price, GPUs, score terms and candidates
        placer.take(got.key)
        del free[got.key]
    assert placer.available == len(free)


def test_identical_workers_are_taken_in_the_order_place_gives() -> None:
    offers = [
        WorkerOffer(
            miner_hotkey=f"m{i % 3}",
            worker_id=f"w-{i:04d}",
            state=WorkerState.IDLE,
            cpu_cores=2,
            ram_mib=4096,
            region="local",
            price_per_cpu_s=0.00001,
        )
        for i in range(300)
    ]
    placer = PlacementPass(list(offers))
    free = {o.key: o for o in offers}
    requirements = Requirements(ram_mib=64)
    for _ in range(300):
        got = placer.place(requirements)
        assert not isinstance(got, NoPlacement)
        expected = place(requirements, list(free.values()))
        assert not isinstance(expected, NoPlacement)
        assert got.key == expected.key
        placer.take(got.key)
        del free[got.key]
    assert isinstance(placer.place(requirements), NoPlacement)
