"""Placement: hard filters, price cap, ranking, spreading and the explanation of a refusal."""

from __future__ import annotations

from typing import Any

import pytest

from byteleap.gateway.scheduler import (
    GpuSpec,
    NoPlacement,
    Placement,
    PlacementPlan,
    PlacementRefused,
    PlacementWeights,
    RejectReason,
    Requirements,
    SchedulerError,
    WorkerOffer,
    WorkerState,
    place,
    place_many,
    rank,
)

H100 = GpuSpec(model="H100", vram_mib=81920)
A100_40 = GpuSpec(model="A100", vram_mib=40960)


def offer(miner: str = "m0", worker: str = "w0", **fields: Any) -> WorkerOffer:
    base: dict[str, Any] = {
        "state": "idle",
        "gpus": (H100,),
        "cpu_cores": 16,
        "ram_mib": 65536,
        "region": "eu",
        "price_per_gpu_s": {"H100": 0.001, "A100": 0.0006},
        "price_per_cpu_s": 0.00001,
        "verified_throughput": 5e13,
        "rtt_ms": 20.0,
    }
    base.update(fields)
    return WorkerOffer(miner_hotkey=miner, worker_id=worker, **base)


GPU_JOB = Requirements(gpu_count=1, gpu_model="H100", min_vram_mib=40000, cpu_cores=4)


@pytest.mark.parametrize("state", [s for s in WorkerState if s is not WorkerState.IDLE])
def test_only_an_idle_worker_is_placed(state: WorkerState) -> None:
    busy = offer("m0", state=state)
    idle = offer("m1", price_per_gpu_s={"H100": 0.01})  # ten times dearer, still the only choice
    result = place(GPU_JOB, [busy, idle])
    assert isinstance(result, Placement)
    assert result.key == ("m1", "w0")
    refused = place(GPU_JOB, [busy])
    assert isinstance(refused, NoPlacement)
    assert refused.rejections[0].reasons == (RejectReason(state.value),)


@pytest.mark.parametrize(
    ("fields", "req", "reason"),
    [
        ({"region": "us"}, GPU_JOB.model_copy(update={"region": "EU"}), "wrong_region"),
        ({"gpus": ()}, GPU_JOB, "too_few_gpus"),
        ({"gpus": (A100_40,)}, GPU_JOB, "wrong_gpu_model"),
        ({"gpus": (A100_40,)}, Requirements(gpu_count=1, min_vram_mib=80000), "not_enough_vram"),
        ({"price_per_gpu_s": {}}, GPU_JOB, "no_price"),
        ({"price_per_cpu_s": None}, Requirements(cpu_cores=2), "no_price"),
        ({"cpu_cores": 2}, GPU_JOB, "not_enough_cpu"),
        ({"ram_mib": 512}, GPU_JOB.model_copy(update={"ram_mib": 1024}), "not_enough_ram"),
        ({}, GPU_JOB.model_copy(update={"max_price_per_s": 0.0009}), "over_max_price"),
    ],
)
def test_each_hard_filter_refuses_with_its_reason(
    fields: dict[str, Any], req: Requirements, reason: str
) -> None:
    result = place(req, [offer(**fields)])
    assert isinstance(result, NoPlacement)
    assert [rej.reasons for rej in result.rejections] == [(RejectReason(reason),)]
    assert result.rejections[0].refusals[0].detail


def test_region_matches_case_insensitively() -> None:
    req = GPU_JOB.model_copy(update={"region": "EU"})
    assert isinstance(place(req, [offer(region="eu")]), Placement)


def test_a_worker_failing_several_filters_lists_them_all() -> None:
    bad = offer(state="offline", region="us", cpu_cores=1)
    result = place(GPU_JOB.model_copy(update={"region": "eu"}), [bad], exclude={bad.key})
    assert isinstance(result, NoPlacement)
    assert set(result.rejections[0].reasons) == {
        RejectReason.EXCLUDED,
        RejectReason.OFFLINE,
        RejectReason.WRONG_REGION,
        RejectReason.NOT_ENOUGH_CPU,
    }
    assert result.reason_counts()["offline"] == 1


def test_cheapest_of_equal_workers_wins() -> None:
    offers = [offer(f"m{i}", price_per_gpu_s={"H100": p}) for i, p in enumerate([3e-3, 1e-3, 2e-3])]
    result = place(GPU_JOB, offers)
    assert isinstance(result, Placement)
    assert (result.key, result.price_per_s) == (("m1", "w0"), 1e-3)
    assert result.candidates == 3


def test_higher_verified_throughput_wins_at_equal_price() -> None:
    offers = [offer("m0", verified_throughput=1e13), offer("m1", verified_throughput=9e13)]
    result = place(GPU_JOB, offers)
    assert isinstance(result, Placement) and result.key == ("m1", "w0")


def test_lower_latency_wins_at_equal_price_and_throughput() -> None:
    offers = [offer("m0", rtt_ms=200.0), offer("m1", rtt_ms=5.0)]
    result = place(GPU_JOB, offers)
    assert isinstance(result, Placement) and result.key == ("m1", "w0")


def test_spreading_prefers_a_miner_without_replicas() -> None:
    offers = [offer("m0"), offer("m1")]
    first = place(GPU_JOB, offers)
    assert isinstance(first, Placement) and first.key == ("m0", "w0")  # tie: hotkey order
    spread = place(GPU_JOB, offers, spread={"m0": 1})
    assert isinstance(spread, Placement) and spread.key == ("m1", "w0")
    assert spread.score.spread == first.score.spread  # both on a miner without replicas


def test_spreading_does_not_override_a_large_price_gap() -> None:
    offers = [offer("m0"), offer("m1", price_per_gpu_s={"H100": 0.01})]
    result = place(GPU_JOB, offers, spread={"m0": 1})
    assert isinstance(result, Placement) and result.key == ("m0", "w0")


def test_weights_change_the_ranking() -> None:
    offers = [offer("m0", rtt_ms=300.0), offer("m1", price_per_gpu_s={"H100": 0.0012})]
    by_price = place(GPU_JOB, offers)
    by_latency = place(GPU_JOB, offers, weights=PlacementWeights(price=0, value=0, latency=1))
    assert isinstance(by_price, Placement) and by_price.key == ("m0", "w0")
    assert isinstance(by_latency, Placement) and by_latency.key == ("m1", "w0")


def test_multi_gpu_takes_the_cheapest_fitting_gpus() -> None:
    gpus = (A100_40, H100, GpuSpec(model="A100", vram_mib=81920), H100)
    worker = offer(gpus=gpus)
    result = place(Requirements(gpu_count=2, min_vram_mib=80000), [worker])
    assert isinstance(result, Placement)
    assert result.gpu_indices == (1, 2)  # the 80 GB A100 (0.0006) and the first H100 (0.001)
    assert result.price_per_s == pytest.approx(0.0016)


def test_cpu_only_work_is_priced_per_core_second() -> None:
    result = place(Requirements(cpu_cores=3), [offer(gpus=())])
    assert isinstance(result, Placement)
    assert result.price_per_s == pytest.approx(3e-5)
    assert result.gpu_indices == ()


def test_exclude_skips_a_worker() -> None:
    offers = [offer("m0"), offer("m1", price_per_gpu_s={"H100": 0.002})]
    result = place(GPU_JOB, offers, exclude={("m0", "w0")})
    assert isinstance(result, Placement) and result.key == ("m1", "w0")


def test_no_offers_gives_an_empty_refusal() -> None:
    result = place(GPU_JOB, [])
    assert isinstance(result, NoPlacement)
    assert (result.rejections, result.message, result.would_fit_later) == (
        (),
        "no workers on offer",
        False,
    )


def test_refusal_tells_waiting_from_impossible() -> None:
    waiting = place(GPU_JOB, [offer(state="busy"), offer("m1", gpus=())])
    impossible = place(GPU_JOB, [offer(state="busy", gpus=()), offer("m1", gpus=())])
    assert isinstance(waiting, NoPlacement) and waiting.would_fit_later
    assert isinstance(impossible, NoPlacement) and not impossible.would_fit_later


def test_refusal_converts_to_a_typed_error() -> None:
    result = place(GPU_JOB, [offer(state="offline")])
    assert isinstance(result, NoPlacement)
    error = result.to_error()
    assert isinstance(error, PlacementRefused)
    assert error.reason == "no_placement"
    assert error.refusal is result
    assert "1 offline" in str(error)
    assert result.model_dump(mode="json")["rejections"][0]["refusals"][0]["reason"] == "offline"


def test_duplicate_offers_and_negative_spread_are_errors() -> None:
    with pytest.raises(SchedulerError) as dup:
        place(GPU_JOB, [offer(), offer()])
    assert dup.value.reason == "duplicate_offer"
    with pytest.raises(SchedulerError) as neg:
        place(GPU_JOB, [offer()], spread={"m0": -1})
    assert neg.value.reason == "bad_spread"


def test_rank_orders_fits_and_lists_the_rest() -> None:
    offers = [offer("m0", price_per_gpu_s={"H100": 0.002}), offer("m1"), offer("m2", gpus=())]
    ranking = rank(GPU_JOB, offers)
    assert [p.key for p in ranking.placements] == [("m1", "w0"), ("m0", "w0")]
    assert [r.key for r in ranking.rejections] == [("m2", "w0")]
    totals = [p.score.total for p in ranking.placements]
    assert totals == sorted(totals, reverse=True)


def test_place_many_spreads_over_miners() -> None:
    offers = [offer("m0", f"w{i}") for i in range(3)] + [
        offer("m1", "w0", price_per_gpu_s={"H100": 0.005}),
        offer("m2", "w0", price_per_gpu_s={"H100": 0.004}),
    ]
    plan = place_many(GPU_JOB, 3, offers)
    assert isinstance(plan, PlacementPlan) and plan.complete
    assert sorted(p.key[0] for p in plan.placements) == ["m0", "m1", "m2"]
    assert plan.placements[0].key == ("m0", "w0")  # the best first


def test_place_many_reuses_miners_only_when_it_must() -> None:
    offers = [offer("m0", f"w{i}") for i in range(3)] + [offer("m1", "w0")]
    plan = place_many(GPU_JOB, 4, offers)
    assert isinstance(plan, PlacementPlan)
    miners = [p.key[0] for p in plan.placements]
    assert sorted(miners) == ["m0", "m0", "m0", "m1"]
    assert len({p.key for p in plan.placements}) == 4
    assert set(miners[:2]) == {"m0", "m1"}


def test_place_many_all_or_nothing_unless_partial() -> None:
    offers = [offer("m0"), offer("m1", state="busy")]
    refused = place_many(GPU_JOB, 2, offers)
    assert isinstance(refused, NoPlacement)
    assert (refused.requested, refused.placeable, len(refused.rejections)) == (2, 1, 1)
    assert refused.message.startswith("1 of 2 replicas placeable")
    plan = place_many(GPU_JOB, 2, offers, partial=True)
    assert isinstance(plan, PlacementPlan)
    assert (len(plan.placements), plan.missing, plan.complete) == (1, 1, False)
    with pytest.raises(SchedulerError):
        place_many(GPU_JOB, 0, offers)
