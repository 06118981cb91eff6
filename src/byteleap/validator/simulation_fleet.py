"""The simulated network's miners: who they are, what they claim, what hardware they really
have (``validator.simulation`` runs them). Honest miners run fleets; each cheater owns one real
card, so what the cheats add shows against a network of real fleets."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import blake3

from byteleap.net.messages import WorkerState, WorkerView
from byteleap.proof.cheats import Cheat
from byteleap.protocol.gpu_models import GPU_MODELS, GpuModel, challenge_flops
from byteleap.protocol.hardware import CpuInfo, DiskInfo, GpuInfo, HardwareInventory, MemoryInfo

__all__ = [
    "CHEATERS",
    "PRODUCT_CHEAT",
    "Device",
    "MinerType",
    "Network",
    "SimWorker",
    "build_network",
]


class MinerType(StrEnum):
    HONEST = "honest"
    HONEST_MIXED = "honest-mixed"
    SPIKY = "spiky"
    HALF_OFFLINE = "half-offline"
    IP_HOPPING = "ip-hopping"
    LAZY = "lazy"
    PARTIAL = "partial-compute"
    LOW_PRECISION = "low-precision"
    SPARSE_ERROR = "sparse-error"
    MULTIPLEX = "multiplex"
    SHARED_HOTKEYS = "shared-hotkeys"
    MODEL_SPOOF = "model-spoof"
    REFUSE_REVEAL = "refuse-reveal"
    WASH_LEASE = "wash-lease"


CHEATERS = frozenset(
    {
        MinerType.LAZY,
        MinerType.PARTIAL,
        MinerType.LOW_PRECISION,
        MinerType.SPARSE_ERROR,
        MinerType.MULTIPLEX,
        MinerType.SHARED_HOTKEYS,
        MinerType.MODEL_SPOOF,
        MinerType.REFUSE_REVEAL,
        MinerType.WASH_LEASE,
    }
)
PRODUCT_CHEAT = {
    MinerType.LAZY: Cheat.LAZY,
    MinerType.PARTIAL: Cheat.PARTIAL,
    MinerType.LOW_PRECISION: Cheat.LOW_PRECISION,
    MinerType.SPARSE_ERROR: Cheat.SPARSE_ERROR,
}
_MIXED = ("H100 SXM", "A100 80GB", "RTX 4090", "RTX 3090")
_MODELS = {m.name: m for m in GPU_MODELS}


@dataclass
class Device:
    flops: float


@dataclass
class SimWorker:
    kind: MinerType
    miner: str
    view: WorkerView
    device: Device
    mac_key: bytes

    @property
    def worker_id(self) -> str:
        return self.view.worker_id

    def sign(self, payload: bytes) -> bytes:
        return blake3.blake3(payload, key=self.mac_key).digest()

    def signature_ok(self, payload: bytes, signature: bytes) -> bool:
        return self.sign(payload) == signature


@dataclass
class Network:
    workers: list[SimWorker] = field(default_factory=list)
    hardware_flops: dict[MinerType, float] = field(default_factory=dict)


def _view(worker_id: str, key: bytes, gpu: str | None, vram_mib: int, uuid: str) -> WorkerView:
    gpus = []
    if gpu is not None:
        gpus = [
            GpuInfo(
                index=0,
                uuid=uuid,
                model=gpu,
                vram_mib=vram_mib,
                driver_version="550.54",
                cuda_version="12.4",
                pci_bus_id="00000000:18:00.0",
            )
        ]
    hardware = HardwareInventory(
        hostname="sim", os="Linux", python="3.11", cpu=CpuInfo(model="EPYC", cores_logical=64),
        memory=MemoryInfo(total_mib=512_000, available_mib=500_000),
        disk=DiskInfo(path="/", total_gib=2000.0, free_gib=1500.0), gpus=gpus,
        probed_at=datetime(2026, 1, 1, tzinfo=UTC),
    )  # fmt: skip
    return WorkerView(
        worker_id=worker_id, public_key=key.hex(), state=WorkerState.IDLE, profile="cuda-f16",
        hardware=hardware, last_seen=0.0,
    )  # fmt: skip


def _card(model: GpuModel, rng: random.Random) -> Device:
    return Device(challenge_flops(model) * rng.uniform(0.99, 1.01))


def build_network(per_miner: int, rng: random.Random) -> Network:
    net = Network()
    h100 = _MODELS["H100 SXM"]

    def add(
        kind: MinerType, miner: str, j: int, claim: GpuModel, device: Device, **kw: Any
    ) -> None:
        key = kw.get("key") or rng.randbytes(32)
        uuid = kw.get("uuid") or f"GPU-{rng.getrandbits(64):016x}"
        vram = kw.get("vram_mib", claim.vram_mib)
        view = _view(f"w-{rng.getrandbits(64):016x}", key, claim.name, vram, uuid)
        net.workers.append(SimWorker(kind, miner, view, device, key))
        net.hardware_flops[kind] = net.hardware_flops.get(kind, 0.0) + kw.get("real", device.flops)

    for kind in MinerType:
        miner = f"miner-{kind.value}"
        # Honest miners run fleets; each cheater owns one real card, so the cheaters together
        # would hold a few per cent of the network's hardware if cheating paid nothing extra.
        fleet = per_miner if kind not in CHEATERS else 1
        if kind is MinerType.MULTIPLEX:
            shared = _card(h100, rng)  # one real card behind eight workers
            net.hardware_flops[kind] = shared.flops
            for j in range(8):
                add(kind, miner, j, h100, shared, real=0.0)
        elif kind is MinerType.SHARED_HOTKEYS:
            device, key = _card(h100, rng), rng.randbytes(32)
            uuid = f"GPU-{rng.getrandbits(64):016x}"
            add(kind, miner, 0, h100, device, key=key, uuid=uuid)
            add(kind, miner + "-2", 0, h100, device, key=key, uuid=uuid, real=0.0)
        elif kind is MinerType.MODEL_SPOOF:
            add(kind, miner, 0, h100, _card(_MODELS["RTX 3090"], rng))
        elif kind is MinerType.HONEST_MIXED:
            for j in range(max(fleet, len(_MIXED))):
                model = _MODELS[_MIXED[j % len(_MIXED)]]
                add(kind, miner, j, model, _card(model, rng))
        elif kind is MinerType.WASH_LEASE:  # a filter only it matches: VRAM no card has
            add(kind, miner, 0, h100, _card(h100, rng), vram_mib=10_000_000, real=0.0)
        else:
            for j in range(fleet):
                add(kind, miner, j, h100, _card(h100, rng))
    return net
