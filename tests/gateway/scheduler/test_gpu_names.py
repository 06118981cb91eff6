"""GPU requests and prices go by what a model name means, not how a worker spells it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from byteleap.gateway.scheduler import (
    Fit,
    GpuSpec,
    NoPlacement,
    Placement,
    Rejection,
    Requirements,
    WorkerOffer,
    fit,
    place,
)
from byteleap.gateway.scheduler.offers import worst_gpu_price
from byteleap.protocol.gpu_models import GPU_MODELS, GpuModel

PRICES = {"H100": 0.0008, "H200": 0.0011, "A100": 0.0004}


def offer(model: str, vram: int = 81559, *, prices: dict[str, float] | None = None) -> WorkerOffer:
    return WorkerOffer(
        miner_hotkey="5Miner", worker_id="w-1", state="idle",
        gpus=(GpuSpec(model=model, vram_mib=vram),), cpu_cores=16, ram_mib=65536, region="eu",
        price_per_gpu_s=PRICES if prices is None else prices,
    )  # fmt: skip


def one_gpu(model: str | None) -> Requirements:
    return Requirements(gpu_count=1, gpu_model=model)


def test_an_nvml_named_h100_is_placed_for_h100_and_priced() -> None:
    placed = place(one_gpu("H100"), [offer("NVIDIA H100 80GB HBM3")])
    assert isinstance(placed, Placement)
    assert placed.price_per_s == PRICES["H100"]


@pytest.mark.parametrize(
    ("request_", "worker", "fits"),
    [
        ("h100", "NVIDIA H100 PCIe", True),  # a family takes every part
        ("H100 SXM", "NVIDIA H100 80GB HBM3", True),
        ("NVIDIA H100 80GB HBM3", "H100 SXM", True),
        ("H100 PCIe", "NVIDIA H100 80GB HBM3", False),  # a part takes only itself
        ("H100", "NVIDIA H200", False),
        ("A100 40GB", "NVIDIA A100-SXM4-80GB", False),
        ("A100", "NVIDIA A100-PCIE-40GB", True),
        ("Quantum 9000", "quantum 9000", True),  # outside the table: case-insensitive only
    ],
)
def test_gpu_requests_match_by_model(request_: str, worker: str, fits: bool) -> None:
    result = fit(one_gpu(request_), offer(worker, prices={worker: 1.0}))
    assert isinstance(result, Fit) is fits
    if not fits:
        assert isinstance(result, Rejection) and result.reasons == ("wrong_gpu_model",)


def test_a_model_price_wins_over_its_family_price() -> None:
    prices = {"H100": 0.0008, "NVIDIA H100 PCIe": 0.0005}
    assert offer("NVIDIA H100 PCIe", prices=prices).gpu_price("NVIDIA H100 PCIe") == 0.0005
    assert offer("H100 SXM", prices=prices).gpu_price("NVIDIA H100 80GB HBM3") == 0.0008
    assert offer("T4", prices=prices).gpu_price("Tesla T4") is None


def test_price_keys_naming_one_model_twice_are_refused() -> None:
    with pytest.raises(ValidationError, match="differ only by case or spelling"):
        offer("H100", prices={"H100": 1.0, "NVIDIA H100": 2.0})
    with pytest.raises(ValidationError, match="differ only by case or spelling"):
        offer("H100", prices={"nvidia-h100-pcie": 1.0, "NVIDIA H100 PCIe": 2.0})


@given(m=st.sampled_from(GPU_MODELS), data=st.data())
def test_every_nvml_name_fits_its_family_and_its_own_name(m: GpuModel, data: st.DataObject) -> None:
    worker = data.draw(st.sampled_from(m.nvml_names))
    prices = {m.family: 0.001}
    for asked in (m.family, m.name, worker):
        result = fit(one_gpu(asked), offer(worker, m.vram_mib, prices=prices))
        assert isinstance(result, Fit), (asked, result)
        assert result.price_per_s == 0.001


def test_an_unpriced_model_is_refused_for_no_price() -> None:
    refused = place(one_gpu(None), [offer("NVIDIA L4", 23034)])
    assert isinstance(refused, NoPlacement) and refused.reason_counts() == {"no_price": 1}


def test_the_worst_price_covers_every_part_a_request_accepts() -> None:
    prices = {"H100": 0.0008, "H100 NVL": 0.0012, "A100": 0.0004}
    assert worst_gpu_price(prices, "H100") == 0.0012
    assert worst_gpu_price(prices, "NVIDIA H100 80GB HBM3") == 0.0008
    assert worst_gpu_price(prices, "A100 40GB") == 0.0004
    assert worst_gpu_price(prices, "Quantum 9000") == 0.0012  # unknown: the dearest entry
    assert worst_gpu_price(prices, None) == 0.0012
    assert worst_gpu_price({}, "H100") == 0.0
