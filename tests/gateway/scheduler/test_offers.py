"""Offers and requirements: validation, name folding, the state values other packages use."""

from typing import Any

import pytest
from pydantic import ValidationError

from byteleap.gateway.scheduler import GpuSpec, Requirements, WorkerOffer, WorkerState
from byteleap.net.messages import WorkerState as WireWorkerState
from byteleap.protocol.states import WorkerState as StoredWorkerState


def test_worker_states_match_the_wire_and_the_store() -> None:
    values = {s.value for s in WorkerState}
    assert values == {s.value for s in WireWorkerState}
    assert values == {s.value for s in StoredWorkerState}


def test_offer_folds_price_table_and_looks_up_any_case() -> None:
    offer = WorkerOffer(
        miner_hotkey="m",
        worker_id="w",
        state="idle",
        gpus=(GpuSpec(model="NVIDIA H100", vram_mib=81920),),
        cpu_cores=4,
        ram_mib=1024,
        region="eu",
        price_per_gpu_s={"NVIDIA H100": 0.002},
    )
    assert offer.gpu_price("nvidia h100") == 0.002
    assert offer.gpu_price("A100") is None
    assert offer.key == ("m", "w")


def test_offer_refuses_price_keys_that_differ_only_by_case() -> None:
    with pytest.raises(ValidationError, match="differ only by case"):
        WorkerOffer(
            miner_hotkey="m",
            worker_id="w",
            state="idle",
            cpu_cores=1,
            ram_mib=1,
            region="eu",
            price_per_gpu_s={"H100": 1.0, "h100": 2.0},
        )


@pytest.mark.parametrize("bad", [{"price_per_cpu_s": -1.0}, {"rtt_ms": float("nan")}])
def test_offer_refuses_negative_or_nan_amounts(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkerOffer(
            miner_hotkey="m",
            worker_id="w",
            state="idle",
            cpu_cores=1,
            ram_mib=1,
            region="eu",
            **bad,
        )


@pytest.mark.parametrize(
    ("fields", "field"),
    [({"gpu_model": "H100"}, "gpu_model"), ({"min_vram_mib": 1024}, "min_vram_mib")],
)
def test_gpu_fields_without_gpus_are_an_error_naming_the_field(
    fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as info:
        Requirements(gpu_count=0, **fields)
    assert info.value.errors()[0]["loc"] == (field,)


def test_requirements_default_to_one_cpu_core_anywhere() -> None:
    req = Requirements()
    assert (req.gpu_count, req.cpu_cores, req.region, req.max_price_per_s) == (0, 1.0, None, None)
