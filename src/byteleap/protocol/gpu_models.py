"""GPU models: what each card is named, how fast its tensor cores are, how much memory it has,
and the checks that hold a worker's claims about its hardware to those figures. Pure.

A worker's GPU model is its own word (NVML's name for the card, or whatever it chooses to
send). This module turns that word into a known model (``canonical_model``), says what a
challenge on such a card should measure (``challenge_flops``, ``throughput_band``), which model
a measured throughput supports (``measured_class``), whether a measurement contradicts a claim
(``is_model_mismatch``), and whether a claimed machine is possible at all (``claim_problem``).

Figures are the vendor's **dense** tensor-core peaks (the datasheets' "with sparsity" figures
halved), each model citing its datasheet in ``source``. ``fp16_tflops`` is FP16 input with
FP32 accumulation, the arithmetic of the ``cuda-f16`` challenge profile: datacenter cards run
it at their FP16 rate, GeForce cards at half their FP16-accumulate rate (the RTX 4090's 165.2,
not 330.3). ``vram_mib`` is the nominal memory (the datasheet's GB, which are GiB-sized parts)
in MiB; NVML reports a little less (an "80GB" H100 shows 81559 MiB).
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

from byteleap.proof.profiles import Profile
from byteleap.protocol.hardware import HardwareInventory

__all__ = [
    "BAND_HIGH",
    "BAND_LOW",
    "CHALLENGE_EFFICIENCY",
    "GPU_MODELS",
    "MAX_CPU_CORES",
    "MAX_GPUS_PER_WORKER",
    "MAX_RAM_MIB",
    "VRAM_TOLERANCE",
    "GpuModel",
    "GpuReading",
    "canonical_model",
    "challenge_flops",
    "claim_problem",
    "gpu_reading",
    "hardware_claim_problem",
    "is_model_mismatch",
    "measured_class",
    "models_named",
    "offered_model",
    "peak_flops",
    "throughput_band",
    "verified_flops",
]


@dataclass(frozen=True, slots=True)
class GpuModel:
    name: str  # canonical, e.g. "H100 SXM"
    family: str  # what a customer asking for "H100" means, e.g. "H100"
    fp16_tflops: float  # dense FP16 tensor, FP32 accumulate
    int8_tops: float  # dense INT8 tensor, INT32 accumulate
    memory_gb: int  # nominal, as the datasheet says
    source: str  # the vendor datasheet (or whitepaper) the three figures come from
    nvml_names: tuple[str, ...]  # what nvidia-smi / NVML call the card
    keys: tuple[str, ...] = ()  # further short names, in normalised form (see _parse)

    @property
    def vram_mib(self) -> int:
        return self.memory_gb * 1024


_H100_DATASHEET = "https://resources.nvidia.com/en-us-tensor-core/nvidia-tensor-core-gpu-datasheet"
_A100_DATASHEET = (
    "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
    "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf"
)

# Fastest first; among equally fast models the one with less memory first (see measured_class).
GPU_MODELS: tuple[GpuModel, ...] = (
    # H100 SXM: FP16 1,979 / INT8 3,958 "with sparsity"; H200: the same GH100 compute.
    GpuModel("H100 SXM", "H100", 989.5, 1979.0, 80, _H100_DATASHEET,
             ("NVIDIA H100 80GB HBM3",), ("h100", "h100sxm", "h100sxm5")),
    GpuModel("H200", "H200", 989.5, 1979.0, 141, "https://www.nvidia.com/en-us/data-center/h200/",
             ("NVIDIA H200",), ("h200", "h200sxm", "h200sxm5")),
    # H100 NVL: FP16 1,671 / INT8 3,341 with sparsity, 94 GB.
    GpuModel("H100 NVL", "H100", 835.5, 1670.5, 94, _H100_DATASHEET,
             ("NVIDIA H100 NVL",), ("h100nvl",)),
    # H100 PCIe: FP16 1,513 / INT8 3,026 with sparsity.
    GpuModel("H100 PCIe", "H100", 756.5, 1513.0, 80, _H100_DATASHEET,
             ("NVIDIA H100 PCIe",), ("h100pcie",)),
    # L40S: FP16 362.05 | 733*, INT8 733 | 1,466*.
    GpuModel("L40S", "L40S", 362.05, 733.0, 48, "https://www.nvidia.com/en-us/data-center/l40s/",
             ("NVIDIA L40S",), ("l40s",)),
    # A100: FP16 312 | 624*, INT8 624 | 1,248*; 40 GB and 80 GB parts compute alike.
    GpuModel("A100 40GB", "A100", 312.0, 624.0, 40, _A100_DATASHEET,
             ("NVIDIA A100-SXM4-40GB", "NVIDIA A100-PCIE-40GB"), ("a100", "a100sxm4", "a100pcie")),
    GpuModel("A100 80GB", "A100", 312.0, 624.0, 80, _A100_DATASHEET,
             ("NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe"), ("a100", "a100sxm4", "a100pcie")),
    # L40: FP16 181.05 | 362.1*, INT8 362 | 724*.
    GpuModel("L40", "L40", 181.05, 362.0, 48, "https://www.nvidia.com/en-us/data-center/l40/",
             ("NVIDIA L40",), ("l40",)),
    # Ada whitepaper, RTX 4090: FP16 tensor with FP32 accumulate 165.2 | 330.4*, INT8 660.6.
    GpuModel("RTX 4090", "RTX 4090", 165.2, 660.6, 24,
             "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf",
             ("NVIDIA GeForce RTX 4090",), ("rtx4090",)),
    # A40: FP16/BF16 tensor with FP32 accumulate 149.7 | 299.4*, INT8 299.3 | 598.6*.
    GpuModel("A40", "A40", 149.7, 299.3, 48, "https://www.nvidia.com/en-us/data-center/a40/",
             ("NVIDIA A40",), ("a40",)),
    # A10: FP16 125 | 250*, INT8 250 | 500*.
    GpuModel("A10", "A10", 125.0, 250.0, 24,
             "https://www.nvidia.com/en-us/data-center/products/a10-gpu/",
             ("NVIDIA A10",), ("a10",)),
    # L4: FP16 242* and INT8 485* are sparsity figures.
    GpuModel("L4", "L4", 121.0, 242.5, 24, "https://www.nvidia.com/en-us/data-center/l4/",
             ("NVIDIA L4",), ("l4",)),
    # GA102 whitepaper, appendix A, RTX 3090: FP16 tensor with FP32 accumulate 71 | 142*,
    # INT8 284 | 568*.
    GpuModel("RTX 3090", "RTX 3090", 71.0, 284.0, 24,
             "https://www.nvidia.com/content/PDF/nvidia-ampere-ga-102-gpu-architecture-whitepaper-v2.pdf",
             ("NVIDIA GeForce RTX 3090",), ("rtx3090",)),
    # T4: mixed precision FP16/FP32 65 TFLOPS, INT8 130 TOPS (Turing has no sparsity mode).
    GpuModel("T4", "T4", 65.0, 130.0, 16,
             "https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/tesla-t4/"
             "t4-tensor-core-datasheet-951643.pdf",
             ("Tesla T4", "NVIDIA T4"), ("t4",)),
)  # fmt: skip

#: What a challenge measures against the dense peak: 2n³ over the whole commit time. Large
#: square FP16 GEMMs reach about 70-80 % of the datasheet peak on datacenter parts (clocks drop
#: under tensor load at the power limit), and a challenge adds Philox generation, BLAKE3 row
#: hashing and the Merkle tree on top of the product, a factor of about 1.15
#: (bench/challenge.md's target for pipeline over bare product); 0.75 / 1.15 ≈ 0.65, rounded
#: down for the miner-to-worker hop and timing noise. An estimate: no GPU run has measured the
#: full challenge yet.
CHALLENGE_EFFICIENCY = 0.6
#: A band's lower edge, as a share of ``challenge_flops``: a worker may measure 40 % below the
#: expected figure (throttling, a busy host, a slow hop) before its claim is called a lie.
BAND_LOW = 0.6
#: A band's upper edge, as a share of the dense peak: nothing computes faster than its peak,
#: but factory-overclocked GeForce cards boost some 10 % above the reference clock.
BAND_HIGH = 1.25
#: Claimed VRAM may exceed the table's nominal figure by this share (NVML reports less).
VRAM_TOLERANCE = 0.02
#: Above every two-socket server, the form of every GPU host (HGX/DGX boards, PCIe GPU
#: servers): two 192-core EPYC 9965 with SMT give 768 logical CPUs, and two sockets carry at
#: most 12 TB (24 × 256 GB RDIMMs each). A worker claiming more is lying.
MAX_CPU_CORES = 1024
MAX_RAM_MIB = 16 * 1024 * 1024  # 16 TiB
#: The largest single-host GPU boards hold 8 (HGX) to 10 (PCIe servers); DGX-2 had 16.
MAX_GPUS_PER_WORKER = 16

_DROP = frozenset({"nvidia", "geforce", "tesla"})
_MEMORY = re.compile(r"^(\d+)gb?$")
_MEMORY_TYPE = re.compile(r"^(hbm\d*e?|gddr\d*x?)$")
_SEPARATORS = re.compile(r"[\s\-_/]+")


def _parse(name: str) -> tuple[str, int | None]:
    """(base key, memory in GB or None): case, vendor words, separators and memory dropped."""
    memory: int | None = None
    base: list[str] = []
    for token in _SEPARATORS.split(name.casefold().strip()):
        if not token or token in _DROP or _MEMORY_TYPE.match(token):
            continue
        size = _MEMORY.match(token)
        if size is not None:
            memory = int(size.group(1))
            continue
        base.append(token)
    return "".join(base), memory


def _index() -> dict[str, tuple[GpuModel, ...]]:
    by_key: dict[str, list[GpuModel]] = {}
    for model in GPU_MODELS:
        keys = {*model.keys, *(_parse(n)[0] for n in (model.name, *model.nvml_names))}
        for key in sorted(keys):
            by_key.setdefault(key, []).append(model)
    # A name without memory picks the part with the most memory (see canonical_model).
    return {k: tuple(sorted(v, key=lambda m: -m.memory_gb)) for k, v in by_key.items()}


def _families() -> dict[str, tuple[GpuModel, ...]]:
    members: dict[str, list[GpuModel]] = {}
    for model in GPU_MODELS:
        members.setdefault(_parse(model.family)[0], []).append(model)
    return {k: tuple(v) for k, v in members.items()}


_BY_KEY = _index()
_FAMILIES = _families()


@lru_cache(maxsize=4096)
def canonical_model(name: str) -> GpuModel | None:
    """The model ``name`` means, or None when it names none in the table.

    Case, an "NVIDIA"/"GeForce"/"Tesla" prefix, spaces, dashes and underscores do not matter;
    a memory size ("80GB") picks between parts that differ only in memory and must match one,
    a memory type ("HBM3") is ignored. A bare family name means its part with the most memory
    ("A100" is an A100 80GB; "H100", the SXM card NVML calls "H100 80GB HBM3").
    """
    base, memory = _parse(name)
    candidates = _BY_KEY.get(base, ())
    if memory is not None:
        candidates = tuple(m for m in candidates if m.memory_gb == memory)
    return candidates[0] if candidates else None


@lru_cache(maxsize=4096)
def models_named(name: str) -> tuple[GpuModel, ...]:
    """Every model a customer's ``gpu_model`` accepts: a family name ("H100") takes each of
    its parts, any other name its one model; () when it names nothing known."""
    base, memory = _parse(name)
    family = _FAMILIES.get(base)
    if family is not None and memory is None:
        return family
    model = canonical_model(name)
    return (model,) if model is not None else ()


def peak_flops(model: GpuModel, profile: Profile | str = Profile.CUDA_F16) -> float:
    """The dense tensor peak, in operations per second, for the challenge profile."""
    if Profile(profile) is Profile.CUDA_I8:
        return model.int8_tops * 1e12
    return model.fp16_tflops * 1e12


def challenge_flops(
    model: GpuModel,
    efficiency: float = CHALLENGE_EFFICIENCY,
    *,
    profile: Profile | str = Profile.CUDA_F16,
) -> float:
    """The throughput (flop/s, 2n³ over the commit time) a challenge on ``model`` should
    measure: its dense peak times ``efficiency`` (see ``CHALLENGE_EFFICIENCY``)."""
    if not 0 < efficiency <= 1:
        raise ValueError(f"efficiency must be in (0, 1], got {efficiency}")
    return peak_flops(model, profile) * efficiency


def throughput_band(
    model: GpuModel, *, profile: Profile | str = Profile.CUDA_F16
) -> tuple[float, float]:
    """(lowest, highest) measured flop/s that is consistent with ``model``."""
    return challenge_flops(model, profile=profile) * BAND_LOW, peak_flops(
        model, profile
    ) * BAND_HIGH


def measured_class(
    flops: float, *, vram_mib: int | None = None, profile: Profile | str = Profile.CUDA_F16
) -> GpuModel | None:
    """The fastest model whose band's lower edge ``flops`` reaches, or None when it reaches
    none, or is above that model's band too (faster than anything in the table).

    Equally fast models go to the one with less memory: a measurement proves speed, not
    memory (an H100 SXM and an H200 measure alike). With ``vram_mib``, only models whose
    memory the reported VRAM matches (within what NVML leaves out, 10 %) are considered.
    """
    if not math.isfinite(flops) or flops <= 0:
        return None
    for model in GPU_MODELS:
        if vram_mib is not None and not _vram_matches(model, vram_mib):
            continue
        low, high = throughput_band(model, profile=profile)
        if flops >= low:
            return model if flops <= high else None
    return None


def is_model_mismatch(
    claimed: str, measured_flops: float, *, profile: Profile | str = Profile.CUDA_F16
) -> bool:
    """True when a verified GPU throughput lies outside the claimed model's band; a claimed
    model not in the table is a mismatch for any measurement."""
    model = canonical_model(claimed)
    if model is None:
        return True
    low, high = throughput_band(model, profile=profile)
    return not low <= measured_flops <= high


def offered_model(
    claimed: str, vram_mib: int, flops: float, *, profile: Profile | str = Profile.CUDA_F16
) -> GpuModel | None:
    """The model a GPU may be sold as: its claim when the verified ``flops`` agree with it and
    the reported VRAM is that model's, else the class ``flops`` supports among models of that
    VRAM; None when nothing fits (then it is sold as no GPU at all).

    Speed alone cannot tell neighbours apart (an RTX 4090 measures inside an A100's band), so
    a claim is taken only with its model's memory: a 24 GB card calling itself an A100 is sold
    as a 24 GB card. The reported VRAM itself is still the worker's word.
    """
    model = canonical_model(claimed)
    if (
        model is not None
        and _vram_matches(model, vram_mib)
        and not is_model_mismatch(claimed, flops, profile=profile)
    ):
        return model
    return measured_class(flops, vram_mib=vram_mib, profile=profile)


def _vram_matches(model: GpuModel, vram_mib: int) -> bool:
    # NVML reports a little under the nominal size (about 6 % under on GDDR6 datacenter cards).
    return model.vram_mib * 0.9 <= vram_mib <= model.vram_mib * (1 + VRAM_TOLERANCE)


def claim_problem(
    gpu_models: Sequence[str],
    vram_mib: Sequence[int],
    cpu_cores: int,
    ram_mib: int,
    gpu_count: int | None = None,
) -> str | None:
    """Why a worker's claimed hardware cannot be real, or None when it can.

    ``gpu_models`` and ``vram_mib`` are per GPU, in the same order; ``gpu_count`` defaults to
    their length. Refused: a GPU model not in the table, more VRAM than the model has, GPUs of
    different models on one worker (its challenge measures one of them), more than
    ``MAX_GPUS_PER_WORKER`` GPUs, more than ``MAX_CPU_CORES`` logical cores or ``MAX_RAM_MIB``
    of memory, and counts that disagree or are negative.
    """
    count = len(gpu_models) if gpu_count is None else gpu_count
    if count != len(gpu_models) or len(vram_mib) != len(gpu_models):
        return f"{count} GPUs claimed, {len(gpu_models)} models and {len(vram_mib)} VRAM sizes"
    if count > MAX_GPUS_PER_WORKER:
        return f"{count} GPUs on one worker (at most {MAX_GPUS_PER_WORKER})"
    if not 1 <= cpu_cores <= MAX_CPU_CORES:
        return f"{cpu_cores} logical CPU cores claimed (1 to {MAX_CPU_CORES})"
    if not 0 <= ram_mib <= MAX_RAM_MIB:
        return f"{ram_mib} MiB of RAM claimed (at most {MAX_RAM_MIB}, 16 TiB)"
    seen: set[str] = set()
    for i, (name, vram) in enumerate(zip(gpu_models, vram_mib, strict=True)):
        model = canonical_model(name)
        if model is None:
            return f"GPU {i}: unknown GPU model {name[:80]!r}"
        if not 0 <= vram <= model.vram_mib * (1 + VRAM_TOLERANCE):
            return f"GPU {i}: {vram} MiB of VRAM claimed, a {model.name} has {model.vram_mib} MiB"
        seen.add(model.name)
    if len(seen) > 1:
        return f"GPUs of different models on one worker ({', '.join(sorted(seen))})"
    return None


def hardware_claim_problem(hardware: HardwareInventory) -> str | None:
    """``claim_problem`` for a worker's inventory, and free memory beyond total memory."""
    if hardware.memory.available_mib > hardware.memory.total_mib:
        return (
            f"{hardware.memory.available_mib} MiB of RAM free claimed, "
            f"{hardware.memory.total_mib} MiB in all"
        )
    return claim_problem(
        [g.model for g in hardware.gpus],
        [g.vram_mib for g in hardware.gpus],
        hardware.cpu.cores_logical,
        hardware.memory.total_mib,
    )


def verified_flops(throughputs: Sequence[float]) -> float | None:
    """One figure for a worker's verified passes: their median (one lucky or one throttled
    challenge moves it nowhere); None without a usable pass."""
    usable = [t for t in throughputs if math.isfinite(t) and t > 0]
    return statistics.median(usable) if usable else None


@dataclass(frozen=True, slots=True)
class GpuReading:
    """A worker's GPU claim beside what its challenges measured, as displays show it."""

    claimed_model: str | None  # its first GPU's model, as the worker reports it
    measured_class: str | None  # ``measured_class`` of the measured throughput
    measured_throughput: float | None  # ``verified_flops`` of its passes, flop/s
    mismatch: bool | None  # ``is_model_mismatch``; None without a GPU or a measurement


def gpu_reading(claimed_models: Sequence[str], passes: Sequence[float]) -> GpuReading:
    """``claimed_models`` per GPU (none for a CPU worker), ``passes`` its verified throughputs."""
    flops = verified_flops(passes)
    claimed = claimed_models[0] if claimed_models else None
    if claimed is None or flops is None:
        return GpuReading(claimed, None, flops, None)
    found = measured_class(flops)
    return GpuReading(
        claimed, found.name if found else None, flops, is_model_mismatch(claimed, flops)
    )
