"""The GPU model table and the checks that hold a worker's hardware claims to it."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.proof.profiles import Profile
from byteleap.protocol.gpu_models import (
    BAND_HIGH,
    GPU_MODELS,
    MAX_CPU_CORES,
    MAX_GPUS_PER_WORKER,
    MAX_RAM_MIB,
    VRAM_TOLERANCE,
    GpuModel,
    GpuReading,
    canonical_model,
    challenge_flops,
    claim_problem,
    gpu_reading,
    hardware_claim_problem,
    is_model_mismatch,
    measured_class,
    models_named,
    offered_model,
    peak_flops,
    throughput_band,
    verified_flops,
)
from hardware_samples import gpu_rig

MODELS = st.sampled_from(GPU_MODELS)
BY_NAME = {m.name: m for m in GPU_MODELS}


def model(name: str) -> GpuModel:
    return BY_NAME[name]


# -- the table ---------------------------------------------------------------------------------


def test_the_table_covers_the_cards_customers_ask_for() -> None:
    wanted = {"H200", "H100 SXM", "H100 PCIe", "A100 80GB", "A100 40GB", "L40S", "L4", "A10",
              "RTX 4090", "RTX 3090", "T4"}  # fmt: skip
    assert wanted <= set(BY_NAME)


def test_every_model_cites_a_vendor_source_and_has_sane_figures() -> None:
    for m in GPU_MODELS:
        assert m.source.startswith("https://") and "nvidia.com" in m.source, m.name
        # Tensor cores run INT8 at least as fast as FP16 on every generation in the table.
        assert 0 < m.fp16_tflops <= m.int8_tops, m.name
        assert m.vram_mib == m.memory_gb * 1024


def test_the_table_is_ordered_fastest_first_then_least_memory() -> None:
    order = [(-m.fp16_tflops, m.memory_gb) for m in GPU_MODELS]
    assert order == sorted(order)


# -- names -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [(n, m.name) for m in GPU_MODELS for n in m.nvml_names]
    + [
        ("H100", "H100 SXM"),
        ("h100 sxm5", "H100 SXM"),
        ("NVIDIA H100", "H100 SXM"),
        ("A100", "A100 80GB"),
        ("A100-SXM4-40GB", "A100 40GB"),
        ("a100 40gb", "A100 40GB"),
        ("RTX4090", "RTX 4090"),
        ("geforce_rtx_3090", "RTX 3090"),
        ("NVIDIA H200 141GB HBM3e", "H200"),
    ],
)
def test_nvml_and_short_names_map_to_their_model(name: str, expected: str) -> None:
    found = canonical_model(name)
    assert found is not None and found.name == expected


@pytest.mark.parametrize("name", ["", "NVIDIA", "Foo 9000", "A100 64GB", "H100 40GB", "RTX 5090"])
def test_names_outside_the_table_are_none(name: str) -> None:
    assert canonical_model(name) is None


SEPARATORS = st.sampled_from([" ", "  ", "-", "_", " - "])


@given(m=MODELS, data=st.data())
def test_case_prefix_and_separators_do_not_matter(m: GpuModel, data: st.DataObject) -> None:
    name = data.draw(st.sampled_from(m.nvml_names))
    words = name.replace("-", " ").split()
    if words[0] == "NVIDIA" and data.draw(st.booleans()):
        words = words[1:]
    glue = [data.draw(SEPARATORS) for _ in words[1:]]
    respelled = words[0] + "".join(g + w for g, w in zip(glue, words[1:], strict=True))
    if data.draw(st.booleans()):
        respelled = respelled.swapcase()
    assert canonical_model(respelled) == m


def test_a_family_name_asks_for_every_part_of_the_family() -> None:
    assert {m.name for m in models_named("H100")} == {"H100 SXM", "H100 PCIe", "H100 NVL"}
    assert {m.name for m in models_named("a100")} == {"A100 40GB", "A100 80GB"}
    assert [m.name for m in models_named("NVIDIA H100 80GB HBM3")] == ["H100 SXM"]
    assert [m.name for m in models_named("H100 PCIe")] == ["H100 PCIe"]
    assert models_named("Foo") == ()


# -- what a challenge should measure -----------------------------------------------------------


@given(m=MODELS)
def test_the_band_brackets_the_expected_figure_and_reaches_past_peak(m: GpuModel) -> None:
    low, high = throughput_band(m)
    expected = challenge_flops(m)
    assert 0 < low < expected < peak_flops(m) < high == pytest.approx(peak_flops(m) * BAND_HIGH)


def test_challenge_flops_scale_with_efficiency_and_profile() -> None:
    h100 = model("H100 SXM")
    assert challenge_flops(h100, 1.0) == pytest.approx(989.5e12)
    assert challenge_flops(h100, 0.5) == pytest.approx(989.5e12 / 2)
    assert challenge_flops(h100, 1.0, profile=Profile.CUDA_I8) == pytest.approx(1979e12)
    for bad in (0.0, -0.1, 1.5):
        with pytest.raises(ValueError, match="efficiency"):
            challenge_flops(h100, bad)


@given(m=MODELS)
def test_a_card_measuring_what_it_should_is_classed_as_no_slower_card(m: GpuModel) -> None:
    flops = challenge_flops(m)
    found = measured_class(flops)
    # Bands overlap, and the class is the fastest band reached: never a slower card.
    assert found is not None and found.fp16_tflops >= m.fp16_tflops
    low, high = throughput_band(found)
    assert low <= flops <= high


def test_equally_fast_cards_class_as_the_one_with_less_memory() -> None:
    just_h100_speed = throughput_band(model("H200"))[0]
    assert measured_class(just_h100_speed) == model("H100 SXM")
    assert measured_class(throughput_band(model("A100 80GB"))[0]) == model("A100 40GB")
    assert measured_class(challenge_flops(model("RTX 3090"))) == model("RTX 3090")


@given(a=st.floats(min_value=1e12, max_value=2e15), b=st.floats(min_value=1e12, max_value=2e15))
def test_measured_class_never_ranks_a_slower_measurement_higher(a: float, b: float) -> None:
    low, high = sorted((a, b))
    slow, fast = measured_class(low), measured_class(high)
    if slow is not None and fast is not None:
        assert slow.fp16_tflops <= fast.fp16_tflops
    for flops, found in ((low, slow), (high, fast)):
        if found is not None:
            lo, hi = throughput_band(found)
            assert lo <= flops <= hi


@pytest.mark.parametrize("flops", [0.0, -1.0, math.nan, math.inf, 1e9, 1e17])
def test_implausible_measurements_have_no_class(flops: float) -> None:
    assert measured_class(flops) is None


def test_vram_restricts_the_class_to_cards_with_that_memory() -> None:
    speed_3090 = challenge_flops(model("RTX 3090"))
    found = measured_class(speed_3090, vram_mib=24576)
    assert found is not None and found.memory_gb == 24
    assert measured_class(speed_3090, vram_mib=81920) is None


# -- mismatches --------------------------------------------------------------------------------


@pytest.mark.adversarial
@pytest.mark.parametrize("claim", ["H100", "NVIDIA H100 80GB HBM3", "H200", "A100"])
def test_a_3090_claiming_a_datacenter_card_is_a_mismatch(claim: str) -> None:
    assert is_model_mismatch(claim, challenge_flops(model("RTX 3090")))
    assert is_model_mismatch(claim, peak_flops(model("RTX 3090")))  # even flat out


@given(m=MODELS, share=st.floats(min_value=0.0, max_value=1.0))
def test_a_card_measuring_inside_its_band_is_no_mismatch(m: GpuModel, share: float) -> None:
    low, high = throughput_band(m)
    flops = low + share * (high - low)
    for name in (m.name, *m.nvml_names):
        assert not is_model_mismatch(name, flops)
    assert is_model_mismatch(m.name, low * 0.99)
    assert is_model_mismatch(m.name, high * 1.01)


@given(name=st.text(max_size=40), flops=st.floats(allow_nan=False))
def test_an_unknown_claim_is_a_mismatch_for_any_measurement(name: str, flops: float) -> None:
    if canonical_model(name) is None:
        assert is_model_mismatch(name, flops)


def test_a_real_h100_measured_at_h100_speed_is_offered_as_an_h100() -> None:
    flops = challenge_flops(model("H100 SXM"))
    assert offered_model("NVIDIA H100 80GB HBM3", 81559, flops) == model("H100 SXM")


@pytest.mark.adversarial
def test_a_3090_claiming_h100_is_offered_as_what_it_measures() -> None:
    flops = challenge_flops(model("RTX 3090"))
    as_24gb = offered_model("H100", 24576, flops)
    assert as_24gb is not None and as_24gb.family != "H100" and as_24gb.memory_gb == 24
    assert offered_model("H100", 81920, flops) is None  # no 80 GB card is that slow


@pytest.mark.adversarial
def test_a_claim_is_taken_only_with_its_models_memory() -> None:
    # An RTX 4090 near its peak (GeForce cards get close) measures inside an A100's band;
    # its 24 GB gives it away.
    flops = peak_flops(model("RTX 4090")) * 0.8
    assert not is_model_mismatch("A100 40GB", flops)
    sold = offered_model("NVIDIA A100-SXM4-40GB", 24564, flops)
    assert sold is not None and sold.memory_gb == 24
    assert offered_model("NVIDIA GeForce RTX 4090", 24564, flops) == model("RTX 4090")
    assert offered_model("NVIDIA L4", 23034, challenge_flops(model("L4"))) == model("L4")


# -- claims ------------------------------------------------------------------------------------


@given(
    m=MODELS,
    count=st.integers(0, MAX_GPUS_PER_WORKER),
    share=st.floats(min_value=0.0, max_value=1.0 + VRAM_TOLERANCE),
    cores=st.integers(1, MAX_CPU_CORES),
    ram=st.integers(0, MAX_RAM_MIB),
)
def test_a_possible_machine_has_no_problem(
    m: GpuModel, count: int, share: float, cores: int, ram: int
) -> None:
    vram = int(m.vram_mib * share)
    assert claim_problem([m.nvml_names[0]] * count, [vram] * count, cores, ram) is None


def test_the_sample_h100_rig_is_a_possible_machine() -> None:
    assert hardware_claim_problem(gpu_rig(8)) is None
    assert hardware_claim_problem(gpu_rig(0)) is None


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("models", "vram", "cores", "ram", "count", "says"),
    [
        (["H100"], [10 * 1024**3], 64, 1 << 20, None, "VRAM"),  # 10 TB of VRAM
        (["H100"], [int(81920 * 1.05)], 64, 1 << 20, None, "VRAM"),
        (["H100"], [-1], 64, 1 << 20, None, "VRAM"),
        (["Quantum GPU 9000"], [1024], 64, 1 << 20, None, "unknown GPU model"),
        ([], [], MAX_CPU_CORES + 1, 1 << 20, None, "CPU cores"),
        ([], [], 10**9, 1 << 20, None, "CPU cores"),
        ([], [], 64, MAX_RAM_MIB + 1, None, "RAM"),
        (["T4"] * 17, [16384] * 17, 64, 1 << 20, None, "17 GPUs"),
        (["H100", "RTX 3090"], [81920, 24576], 64, 1 << 20, None, "different models"),
        (["H100"], [81920], 64, 1 << 20, 8, "8 GPUs claimed"),
        (["H100"], [], 64, 1 << 20, None, "VRAM sizes"),
    ],
)
def test_impossible_claims_say_why(
    models: list[str], vram: list[int], cores: int, ram: int, count: int | None, says: str
) -> None:
    problem = claim_problem(models, vram, cores, ram, count)
    assert problem is not None and says in problem


@pytest.mark.adversarial
@given(m=MODELS, extra=st.integers(1, 10**12))
def test_vram_beyond_the_model_is_always_refused(m: GpuModel, extra: int) -> None:
    claimed = int(m.vram_mib * (1 + VRAM_TOLERANCE)) + extra
    problem = claim_problem([m.name], [claimed], 8, 1024)
    assert problem is not None and "VRAM" in problem


@pytest.mark.adversarial
def test_more_free_memory_than_memory_is_refused() -> None:
    rig = gpu_rig(1)
    lying = rig.model_copy(
        update={"memory": rig.memory.model_copy(update={"available_mib": 10 * 1024**3})}
    )
    problem = hardware_claim_problem(lying)
    assert problem is not None and "free" in problem


# -- readings for displays ---------------------------------------------------------------------


@given(st.lists(st.floats(min_value=1e6, max_value=1e16), min_size=1, max_size=30))
def test_the_verified_figure_is_the_median_of_the_passes(passes: list[float]) -> None:
    assert verified_flops(passes) == statistics.median(passes)


def test_unusable_passes_do_not_count() -> None:
    assert verified_flops([]) is None
    assert verified_flops([0.0, math.nan, -5.0]) is None
    assert verified_flops([math.inf, 4.0, 0.0, 2.0]) == 3.0


def test_a_reading_puts_the_claim_beside_the_measurement() -> None:
    h100, slow = challenge_flops(model("H100 SXM")), challenge_flops(model("RTX 3090"))
    honest = gpu_reading(["NVIDIA H100 80GB HBM3"] * 2, [h100 * 0.9, h100, h100 * 1.1])
    assert honest == GpuReading("NVIDIA H100 80GB HBM3", "H100 SXM", pytest.approx(h100), False)
    liar = gpu_reading(["NVIDIA H100 80GB HBM3"], [slow])
    assert (liar.measured_class, liar.mismatch) == ("RTX 3090", True)
    assert gpu_reading([], [3e10]) == GpuReading(None, None, 3e10, None)  # a CPU worker
    assert gpu_reading(["H100"], []) == GpuReading("H100", None, None, None)
