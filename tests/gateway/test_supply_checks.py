"""What the gateway refuses to sell, and what it sells a GPU as (pure checks)."""

from __future__ import annotations

import math

import pytest

from byteleap.gateway.scheduler import GpuSpec, WorkerOffer, WorkerState
from byteleap.gateway.supply_checks import as_measured, refused_workers
from byteleap.protocol.gpu_models import GPU_MODELS, challenge_flops
from gateway.supply_samples import listed

SPEED = {m.name: challenge_flops(m) for m in GPU_MODELS}


def gpu_offer(model: str, vram_mib: int, count: int = 1) -> WorkerOffer:
    return WorkerOffer(
        miner_hotkey="5Miner", worker_id="w-1", state=WorkerState.IDLE,
        gpus=(GpuSpec(model=model, vram_mib=vram_mib),) * count, cpu_cores=32, ram_mib=1 << 18,
        region="eu", price_per_gpu_s={"H100": 0.0008},
    )  # fmt: skip


def test_honest_distinct_workers_are_all_offered() -> None:
    listings = {"5A": [listed(), listed(gpus=8)], "5B": [listed(model="NVIDIA L4", vram_mib=23034)]}
    assert refused_workers(listings) == {}


@pytest.mark.adversarial
def test_a_worker_claiming_ten_terabytes_of_vram_is_refused() -> None:
    liar, honest = listed(vram_mib=10 * 1024**3), listed()
    refused = refused_workers({"5A": [liar, honest]})
    assert list(refused) == [("5A", liar.worker_id)]
    assert "VRAM" in refused[("5A", liar.worker_id)]


@pytest.mark.adversarial
def test_a_gpu_listed_by_two_miners_refuses_both_workers() -> None:
    a, b, other = listed(uuid_tag="shared"), listed(uuid_tag="shared"), listed()
    refused = refused_workers({"5A": [a, other], "5B": [b]})
    assert set(refused) == {("5A", a.worker_id), ("5B", b.worker_id)}
    assert all("shared_gpu" in why for why in refused.values())


@pytest.mark.adversarial
def test_one_key_under_two_workers_refuses_both() -> None:
    a, b = listed(key="ab" * 32), listed(key="ab" * 32)
    refused = refused_workers({"5A": [a, b]})
    assert refused == {
        ("5A", a.worker_id): "duplicated worker (shared_key)",
        ("5A", b.worker_id): "duplicated worker (shared_key)",
    }


def test_an_nvml_named_h100_measuring_h100_speed_is_sold_as_an_h100() -> None:
    sold = as_measured(gpu_offer("NVIDIA H100 80GB HBM3", 81559, count=2), SPEED["H100 SXM"])
    assert sold.gpus == (GpuSpec(model="H100 SXM", vram_mib=81559),) * 2
    assert sold.verified_throughput == SPEED["H100 SXM"]


@pytest.mark.adversarial
def test_a_3090_claiming_h100_is_sold_as_what_it_measures() -> None:
    sold = as_measured(gpu_offer("NVIDIA H100 80GB HBM3", 24576), SPEED["RTX 3090"])
    assert len(sold.gpus) == 1 and not sold.gpus[0].model.startswith("H100")
    assert sold.gpus[0].vram_mib <= 24576
    # Claiming 80 GB as well leaves no card it could be: it is sold as no GPU at all.
    assert as_measured(gpu_offer("H100", 81920), SPEED["RTX 3090"]).gpus == ()


@pytest.mark.adversarial
@pytest.mark.parametrize("flops", [None, 0.0, -1.0, math.nan, math.inf])
def test_without_a_verified_gpu_throughput_no_gpu_is_sold(flops: float | None) -> None:
    sold = as_measured(gpu_offer("NVIDIA H100 80GB HBM3", 81559), flops)
    assert sold.gpus == () and sold.verified_throughput == 0.0
    assert sold.cpu_cores == 32  # still sold for CPU work


def test_a_cpu_worker_keeps_its_offer_and_gets_its_throughput() -> None:
    cpu = gpu_offer("x", 0).model_copy(update={"gpus": ()})
    assert as_measured(cpu, 3e10) == cpu.model_copy(update={"verified_throughput": 3e10})
