"""`byteleap validator scores` shows each worker's claimed GPU beside what it measured."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from typer.testing import CliRunner

from byteleap.commands import validator as command
from byteleap.protocol.gpu_models import GPU_MODELS, challenge_flops
from byteleap.store import (
    ChallengeStatus,
    GpuRecord,
    NewChallenge,
    Store,
    WorkerHardware,
    advance_challenge,
    record_challenge,
    set_worker_hardware,
    upsert_miner,
    upsert_workers,
)

SPEED = {m.name: challenge_flops(m) for m in GPU_MODELS}


async def passed(store: Store, miner: int, worker: int, cid: str, at: int, flops: float) -> None:
    async with store.session() as s:
        await record_challenge(
            s,
            NewChallenge(
                id=cid, worker_id=worker, miner_id=miner, profile="cuda-f16", n=32768,
                seed="00" * 32, issued_at=at, deadline_at=at + 60,
            ),
        )  # fmt: skip
        await advance_challenge(s, cid, ChallengeStatus.COMMITTED, at=at, root="11" * 32)
        await advance_challenge(s, cid, ChallengeStatus.PASSED, at=at, throughput=flops)


@pytest.mark.adversarial
async def test_readings_put_each_claim_beside_its_median_pass(store: Store) -> None:
    now = int(time.time())
    async with store.session() as s:
        miner = await upsert_miner(s, "5Miner", uid=1, axon=None, at=now)
        ids = await upsert_workers(s, miner.id, ["real", "fake", "cpu", "new"], at=now)
        for key in ("real", "fake", "new"):
            gpu = GpuRecord(slot=0, model="NVIDIA H100 80GB HBM3", vram_mb=81559)
            await set_worker_hardware(
                s, ids[key], WorkerHardware("EPYC", 64, 1 << 20, None, (gpu,))
            )
    for i, flops in enumerate((SPEED["H100 SXM"], 0.9 * SPEED["H100 SXM"], 2 * SPEED["H100 SXM"])):
        await passed(store, miner.id, ids["real"], f"r{i}", now - 60, flops)
    await passed(store, miner.id, ids["fake"], "f0", now - 60, SPEED["RTX 3090"])
    await passed(store, miner.id, ids["cpu"], "c0", now - 60, 3e10)
    await passed(store, miner.id, ids["real"], "old", now - 7200, 1e9)  # before the window

    readings = await command.gpu_readings(store, since=now - 3600, until=now)
    fields = {key: command.reading_fields(readings[("5Miner", key)]) for key in ids}
    assert fields["real"] == {
        "claimed_gpu_model": "NVIDIA H100 80GB HBM3",
        "measured_gpu_class": "H100 SXM",
        "measured_throughput": pytest.approx(SPEED["H100 SXM"]),
        "gpu_model_mismatch": False,
    }
    assert fields["fake"]["measured_gpu_class"] == "RTX 3090"
    assert fields["fake"]["gpu_model_mismatch"] is True
    assert fields["cpu"] == {
        "claimed_gpu_model": None,
        "measured_gpu_class": None,
        "measured_throughput": 3e10,
        "gpu_model_mismatch": None,
    }
    assert fields["new"]["measured_throughput"] is None


def scores_data() -> dict[str, Any]:
    base = {"successes": 3, "failures": 0, "wrong_answers": 0, "performance": 5e14,
            "availability": 1.0, "score": 5e14}  # fmt: skip
    real = command.reading_fields(None) | {
        "claimed_gpu_model": "NVIDIA H100 80GB HBM3",
        "measured_gpu_class": "H100 SXM",
        "measured_throughput": 5.9e14,
        "gpu_model_mismatch": False,
    }
    fake = real | {"measured_gpu_class": "RTX 3090", "measured_throughput": 4.3e13,
                   "gpu_model_mismatch": True}  # fmt: skip
    return {
        "now": 0.0,
        "lease_active": False,
        "miners": [
            {
                "hotkey": "5Miner",
                "workers": 2,
                "challenge": 1.0,
                "lease": 0.0,
                "final": 1.0,
                "weight": 1.0,
                "uid": 1,
            },
        ],
        "workers": [
            base | real | {"miner_hotkey": "5Miner", "worker_id": "w-real"},
            base | fake | {"miner_hotkey": "5Miner", "worker_id": "w-fake"},
        ],
    }


def test_the_table_and_json_show_claimed_and_measured(monkeypatch: pytest.MonkeyPatch) -> None:
    async def fake_scores(settings: Any) -> dict[str, Any]:
        return scores_data()

    monkeypatch.setattr(command, "_scores", fake_scores)
    monkeypatch.setattr(command, "settings_for", lambda cls, config: None)
    table = CliRunner().invoke(command.app, ["scores"], env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    real, fake = (
        line for line in table.output.splitlines() if "w-real" in line or "w-fake" in line
    )
    assert "H100 SXM" in real and "590.0" in real and "✗" not in real
    assert "RTX 3090 ✗" in fake and "43.0" in fake and "NVIDIA H100 80GB HBM3" in fake
    as_json = CliRunner().invoke(command.app, ["scores", "--json"])
    assert json.loads(as_json.output)["workers"][1]["gpu_model_mismatch"] is True
