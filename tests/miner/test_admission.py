"""An honest miner admits no worker whose hardware cannot be real, at enrolment or at hello."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from byteleap.miner.errors import ImpossibleHardware
from byteleap.miner.ledger import MinerLedger
from byteleap.miner.node import MinerNode
from byteleap.net.enrollment import hello_payload
from byteleap.net.messages import Enroll, Hello, WorkerState
from byteleap.protocol.hardware import GpuInfo, HardwareInventory
from hardware_samples import gpu_rig

TLS_KEY = "ab" * 32


@pytest.fixture
def node(tmp_path: Path) -> Iterator[MinerNode]:
    ledger = MinerLedger(tmp_path / "miner.db")
    yield MinerNode("5Miner", TLS_KEY, ledger, heartbeat_s=5.0, missed_heartbeats=3)
    ledger.close()


def public_hex(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


def with_gpu(rig: HardwareInventory, **changes: object) -> HardwareInventory:
    gpus: list[GpuInfo] = [g.model_copy(update=changes) for g in rig.gpus]
    return rig.model_copy(update={"gpus": gpus})


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("hardware", "says"),
    [
        (with_gpu(gpu_rig(1), vram_mib=10 * 1024**3), "VRAM"),  # 10 TB on one H100
        (with_gpu(gpu_rig(1), model="NVIDIA Quantum 9000"), "unknown GPU model"),
        (gpu_rig(20), "20 GPUs"),
    ],
)
def test_enrolment_with_impossible_hardware_is_refused_and_spends_no_token(
    node: MinerNode, hardware: HardwareInventory, says: str
) -> None:
    token = node.ledger.new_token(TLS_KEY, ttl_s=600)
    key = Ed25519PrivateKey.generate()
    lying = Enroll(token=token, public_key=public_hex(key), hardware=hardware)
    with pytest.raises(ImpossibleHardware, match=says) as refused:
        node.admit(lying, secrets.token_hex(32), "10.0.0.7")
    assert refused.value.reason == "impossible_hardware"
    assert len(node.registry) == 0
    # The token is still good: the same worker, reporting what it really has, gets in.
    honest = Enroll(token=token, public_key=public_hex(key), hardware=gpu_rig(1))
    entry = node.admit(honest, secrets.token_hex(32), "10.0.0.7")
    assert entry.state is WorkerState.IDLE and len(node.registry) == 1


@pytest.mark.adversarial
def test_an_enrolled_worker_saying_hello_with_impossible_hardware_is_refused(
    node: MinerNode,
) -> None:
    key = Ed25519PrivateKey.generate()
    token = node.ledger.new_token(TLS_KEY, ttl_s=600)
    enrolled = node.admit(
        Enroll(token=token, public_key=public_hex(key), hardware=gpu_rig(1)), "00" * 32, "10.0.0.7"
    )
    node.registry.transition(enrolled.worker_id, WorkerState.OFFLINE)
    nonce = secrets.token_hex(32)
    signature = key.sign(hello_payload(nonce, node.hotkey)).hex()
    lying = with_gpu(gpu_rig(1), vram_mib=10 * 1024**3)
    hello = Hello(worker_id=enrolled.worker_id, signature=signature, hardware=lying)
    with pytest.raises(ImpossibleHardware, match="VRAM"):
        node.admit(hello, nonce, "10.0.0.7")
    # Refused before anything changed: the miner keeps what the worker last honestly said.
    assert node.registry.get(enrolled.worker_id).hardware == gpu_rig(1)
    assert node.registry.get(enrolled.worker_id).state is WorkerState.OFFLINE
    hello = Hello(worker_id=enrolled.worker_id, signature=signature, hardware=gpu_rig(1))
    assert node.admit(hello, nonce, "10.0.0.7").state is WorkerState.IDLE
