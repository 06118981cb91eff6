"""Which challenge a worker gets: its GPU is measured where it reports one, its CPU otherwise."""

from __future__ import annotations

import pytest

from byteleap.config import ValidatorSettings
from byteleap.net.messages import WorkerState, WorkerView
from byteleap.proof import Profile, size_challenge
from byteleap.protocol.gpu_models import canonical_model, challenge_flops
from byteleap.validator.rounds import RoundParams
from byteleap.validator.service import round_params
from hardware_samples import gpu_rig


def _worker(gpus: int) -> WorkerView:
    return WorkerView(
        worker_id="w-" + "0" * 16,
        public_key="00" * 32,
        state=WorkerState.IDLE,
        profile="cpu-f64",
        hardware=gpu_rig(gpus),
        last_seen=0.0,
    )


def test_gpu_workers_get_the_gpu_challenge_and_cpu_workers_the_cpu_one() -> None:
    params = round_params(ValidatorSettings(challenge_n=1024, gpu_challenge_profile="cuda-i8"))
    cpu = params.plan_for(_worker(gpus=0))
    assert cpu is not None
    assert (cpu.n, cpu.profile, cpu.products) == (1024, Profile.CPU_F64, 1)
    gpu = params.plan_for(_worker(gpus=2))
    assert gpu is not None and gpu.profile is Profile.CUDA_I8
    plan = RoundParams().plan_for(_worker(gpus=1))
    assert plan is not None and plan.profile is Profile.CUDA_F16


def _with_gpu(model: str, vram_mib: int) -> WorkerView:
    worker = _worker(gpus=1)
    gpu = worker.hardware.gpus[0].model_copy(update={"model": model, "vram_mib": vram_mib})
    return worker.model_copy(
        update={"hardware": worker.hardware.model_copy(update={"gpus": [gpu]})}
    )


@pytest.mark.parametrize(
    ("nvml_name", "vram_mib"),
    [
        ("NVIDIA H100 80GB HBM3", 81559),
        ("NVIDIA A100-SXM4-40GB", 40960),
        ("NVIDIA GeForce RTX 4090", 24564),
        ("NVIDIA GeForce RTX 3090", 24576),
    ],
)
def test_a_gpu_challenge_fills_the_claimed_card_and_takes_the_target_time(
    nvml_name: str, vram_mib: int
) -> None:
    params = RoundParams()
    plan = params.plan_for(_with_gpu(nvml_name, vram_mib))
    assert plan is not None
    model = canonical_model(nvml_name)
    assert model is not None
    size = size_challenge(
        params.gpu_profile,
        device_flops=challenge_flops(model, profile=params.gpu_profile),
        memory_bytes=min(vram_mib, model.vram_mib) << 20,
        target_s=params.gpu_target_s,
    )
    assert (plan.n, plan.products) == (size.n, size.products)
    assert size.working_set_bytes >= 0.75 * (min(vram_mib, model.vram_mib) << 20)
    # The deadline is the claimed card's time with slack, but under twice it: one card cannot
    # finish two of these inside one deadline.
    assert size.expected_s < plan.deadline_s < 2 * size.expected_s


@pytest.mark.parametrize(
    ("model", "vram_mib"),
    [("NVIDIA H100 80GB HBM3", 10_000_000), ("Imaginary GPU 9000", 81559)],
)
def test_an_impossible_or_unknown_gpu_claim_is_never_challenged(model: str, vram_mib: int) -> None:
    assert RoundParams().plan_for(_with_gpu(model, vram_mib)) is None
