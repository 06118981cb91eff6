"""Properties of placement over random offers, checked against an oracle written apart from it."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from byteleap.gateway.scheduler import (
    GpuSpec,
    NoPlacement,
    Placement,
    PlacementPlan,
    Requirements,
    WorkerOffer,
    WorkerState,
    place,
    place_many,
    rank,
)

MODELS = ["H100", "A100", "L4"]
prices = st.floats(min_value=0, max_value=0.01, allow_nan=False)

gpu_specs = st.builds(
    GpuSpec, model=st.sampled_from(MODELS), vram_mib=st.sampled_from([24576, 40960, 81920])
)

# Most offers idle, so that a good share of random cases have a worker that fits.
states = st.sampled_from([WorkerState.IDLE] * 4 + list(WorkerState))


@st.composite
def offer_lists(draw: st.DrawFn) -> list[WorkerOffer]:
    n = draw(st.integers(min_value=0, max_value=12))
    return [
        WorkerOffer(
            miner_hotkey=draw(st.sampled_from(["m0", "m1", "m2", "m3"])),
            worker_id=f"w{i}",
            state=draw(states),
            gpus=tuple(draw(st.lists(gpu_specs, max_size=4))),
            cpu_cores=draw(st.sampled_from([0, 2, 8, 16, 32])),
            ram_mib=draw(st.sampled_from([0, 16384, 65536, 131072])),
            region=draw(st.sampled_from(["eu", "eu", "us"])),
            price_per_gpu_s=draw(st.fixed_dictionaries({}, optional=dict.fromkeys(MODELS, prices))),
            price_per_cpu_s=draw(st.none() | prices),
            verified_throughput=draw(st.floats(min_value=0, max_value=1e15)),
            rtt_ms=draw(st.floats(min_value=0, max_value=500)),
            running_jobs=draw(st.integers(min_value=0, max_value=3)),
        )
        for i in range(n)
    ]


@st.composite
def requirement_sets(draw: st.DrawFn) -> Requirements:
    gpu_count = draw(st.integers(min_value=0, max_value=2))
    return Requirements(
        gpu_count=gpu_count,
        gpu_model=draw(st.none() | st.sampled_from(MODELS)) if gpu_count else None,
        min_vram_mib=draw(st.sampled_from([0, 30000, 80000])) if gpu_count else 0,
        cpu_cores=draw(st.sampled_from([0.5, 1.0, 4.0, 8.0])),
        ram_mib=draw(st.sampled_from([0, 1024, 32768])),
        region=draw(st.none() | st.sampled_from(["eu", "us"])),
        max_price_per_s=draw(st.none() | st.floats(min_value=0, max_value=0.02)),
    )


def oracle_price(req: Requirements, o: WorkerOffer) -> float | None:
    """The cheapest price ``o`` can run ``req`` at, ignoring state, or None if it cannot."""
    if (req.region and req.region != o.region) or o.cpu_cores < req.cpu_cores:
        return None
    if o.ram_mib < req.ram_mib:
        return None
    if req.gpu_count == 0:
        return None if o.price_per_cpu_s is None else req.cpu_cores * o.price_per_cpu_s
    usable = sorted(
        o.price_per_gpu_s[g.model.casefold()]
        for g in o.gpus
        if g.model.casefold() in o.price_per_gpu_s
        and g.vram_mib >= req.min_vram_mib
        and (req.gpu_model is None or g.model == req.gpu_model)
    )
    return sum(usable[: req.gpu_count]) if len(usable) >= req.gpu_count else None


def feasible(req: Requirements, o: WorkerOffer, exclude: set[tuple[str, str]]) -> bool:
    price = oracle_price(req, o)
    return (
        o.state is WorkerState.IDLE
        and o.key not in exclude
        and price is not None
        and (req.max_price_per_s is None or price <= req.max_price_per_s)
    )


@settings(max_examples=120, deadline=None)
@given(req=requirement_sets(), offers=offer_lists(), data=st.data())
def test_placement_is_feasible_and_exists_whenever_a_worker_fits(
    req: Requirements, offers: list[WorkerOffer], data: st.DataObject
) -> None:
    exclude = set(data.draw(st.lists(st.sampled_from([o.key for o in offers] or [("x", "y")]))))
    result = place(req, offers, exclude=exclude)
    fitting = [o for o in offers if feasible(req, o, exclude)]
    if isinstance(result, Placement):
        chosen = result.worker
        assert chosen in fitting
        assert result.price_per_s == oracle_price(req, chosen)
        assert req.max_price_per_s is None or result.price_per_s <= req.max_price_per_s
        assert len(set(result.gpu_indices)) == req.gpu_count
        for i in result.gpu_indices:
            assert chosen.gpus[i].vram_mib >= req.min_vram_mib
            assert req.gpu_model in (None, chosen.gpus[i].model)
        assert result.candidates == len(fitting)
    else:
        assert not fitting
        assert [r.key for r in result.rejections] == [o.key for o in offers]
        assert all(r.refusals for r in result.rejections)


@settings(max_examples=80, deadline=None)
@given(
    req=requirement_sets(),
    offers=offer_lists(),
    spread=st.dictionaries(
        st.sampled_from(["m0", "m1", "m2", "m3"]), st.integers(min_value=0, max_value=3)
    ),
)
def test_winner_is_never_dominated_and_order_of_offers_does_not_matter(
    req: Requirements, offers: list[WorkerOffer], spread: dict[str, int]
) -> None:
    result = place(req, offers, spread=spread)
    if not isinstance(result, Placement):
        return
    shuffled = list(offers)
    random.Random(7).shuffle(shuffled)
    assert place(req, shuffled, spread=spread) == result
    w, p_w = result.worker, result.price_per_s

    def no_worse(o: WorkerOffer, p: float) -> tuple[bool, ...]:
        return (
            p <= p_w,
            o.verified_throughput >= w.verified_throughput,
            o.rtt_ms <= w.rtt_ms,
            spread.get(o.miner_hotkey, 0) <= spread.get(w.miner_hotkey, 0),
            o.running_jobs <= w.running_jobs,
        )

    for other in rank(req, offers, spread=spread).placements[1:]:
        o, p = other.worker, other.price_per_s
        same = (p, o.verified_throughput, o.rtt_ms, spread.get(o.miner_hotkey, 0), o.running_jobs)
        mine = (p_w, w.verified_throughput, w.rtt_ms, spread.get(w.miner_hotkey, 0), w.running_jobs)
        assert not (all(no_worse(o, p)) and same != mine), (o.key, "dominates", w.key)


@settings(max_examples=200, deadline=None)
@given(
    price_list=st.lists(st.floats(min_value=0, max_value=1.0), min_size=1, max_size=8),
    spread=st.integers(min_value=0, max_value=5),
)
def test_among_equal_workers_the_cheapest_wins(price_list: list[float], spread: int) -> None:
    offers = [
        WorkerOffer(
            miner_hotkey="m",
            worker_id=f"w{i}",
            state="idle",
            gpus=(GpuSpec(model="H100", vram_mib=81920),),
            cpu_cores=8,
            ram_mib=8192,
            region="eu",
            price_per_gpu_s={"H100": p},
            verified_throughput=1e14,
        )
        for i, p in enumerate(price_list)
    ]
    result = place(Requirements(gpu_count=1), offers, spread={"m": spread})
    assert isinstance(result, Placement)
    assert result.price_per_s == min(price_list)
    # Equal prices tie-break on worker id, so the first of the cheapest wins.
    assert result.key == ("m", f"w{price_list.index(min(price_list))}")


# Loose requirements half the time, so plans often have several miners to choose from.
loose = st.sampled_from([Requirements(), Requirements(gpu_count=1)])


@settings(max_examples=80, deadline=None)
@given(req=loose | requirement_sets(), offers=offer_lists(), count=st.integers(1, 5))
def test_place_many_uses_as_many_miners_as_it_can(
    req: Requirements, offers: list[WorkerOffer], count: int
) -> None:
    result = place_many(req, count, offers, partial=True)
    fitting = [o for o in offers if feasible(req, o, set())]
    if not fitting:
        assert isinstance(result, NoPlacement)
        return
    assert isinstance(result, PlacementPlan)
    keys = [p.key for p in result.placements]
    assert len(keys) == len(set(keys)) == min(count, len(fitting))
    assert all(p.worker in fitting for p in result.placements)
    miners_available = len({o.miner_hotkey for o in fitting})
    assert len({k[0] for k in keys}) == min(len(keys), miners_available)
