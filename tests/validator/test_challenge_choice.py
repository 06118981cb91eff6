"""Which challenge a worker gets: its GPU is measured where it reports one, its CPU otherwise."""

from __future__ import annotations

import pytest

from byteleap.config import ValidatorSettings
from byteleap.net.messages import WorkerState, WorkerView
from byteleap.proof import Profile
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
    assert params.challenge_for(_worker(gpus=0)) == (1024, Profile.CPU_F64)
    assert params.challenge_for(_worker(gpus=2)) == (32768, Profile.CUDA_I8)
    assert RoundParams().challenge_for(_worker(gpus=1)) == (32768, Profile.CUDA_F16)


def test_a_gpu_size_its_profile_cannot_keep_exact_is_refused_at_load() -> None:
    with pytest.raises(ValueError, match="gpu_challenge_n"):
        ValidatorSettings(gpu_challenge_n=65536)  # cuda-f16's A bound would fall below 256
