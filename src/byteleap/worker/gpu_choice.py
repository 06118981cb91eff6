"""Which of the host's GPUs a worker serves, and how the work it runs is shown only those.

One worker per GPU is the usual shape of a multi-GPU host: ``byteleap worker --gpu 3`` (the
``gpus`` setting) or, without it, the GPUs ``CUDA_VISIBLE_DEVICES`` names (nvidia-smi
indices or GPU UUIDs, as CUDA reads them). The choice is made once at start from the host's
NVML inventory and kept as UUIDs, which survive a re-probe; a GPU that does not exist is a
`ConfigError` naming what the host has. Pure: the caller probes and sets the environment.

Device indices in work from the gateway (``ExecutionSpec.gpus``, a VM lease's
``gpu_indices``) are positions in the worker's reported GPU list (as the gateway's offers
number them); `host_indices` turns them into the host's NVML indices, which docker's
``--gpus device=``, podman's CDI names and (with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``)
``CUDA_VISIBLE_DEVICES`` all mean.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from byteleap.config import ConfigError
from byteleap.protocol.hardware import GpuInfo, HardwareInventory

#: CUDA numbers devices fastest first unless told to follow the PCI bus, as NVML does.
CUDA_ORDER = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID"}


@dataclass(frozen=True)
class GpuChoice:
    """The GPUs a worker serves, by UUID in the host's order; ``None``: every GPU there is."""

    uuids: tuple[str, ...] | None = None

    def inventory(self, hardware: HardwareInventory) -> HardwareInventory:
        """``hardware`` with only the chosen GPUs in it."""
        if self.uuids is None:
            return hardware
        chosen = set(self.uuids)
        return hardware.model_copy(update={"gpus": [g for g in hardware.gpus if g.uuid in chosen]})

    def environment(self) -> dict[str, str]:
        """What shows a program only these GPUs (empty: the host's own environment stands)."""
        if self.uuids is None:
            return {}
        return {"CUDA_VISIBLE_DEVICES": ",".join(self.uuids), **CUDA_ORDER}

    def apply(self, environ: MutableMapping[str, str]) -> None:
        """Show this process (its challenges' CUDA context) only the chosen GPUs; call it
        before anything initialises CUDA."""
        environ.update(self.environment())


def _where(host: Sequence[GpuInfo]) -> str:
    if not host:
        return "this host has no GPU NVML can see"
    count = f"{len(host)} GPU" + ("s" if len(host) > 1 else "")
    indices = [g.index for g in host]
    if indices == list(range(len(host))):
        return f"this host has {count} (indices 0 to {len(host) - 1})"
    return f"this host has {count} (indices {', '.join(map(str, indices))})"


def _by_index(host: Sequence[GpuInfo], index: int, source: str) -> GpuInfo:
    for gpu in host:
        if gpu.index == index:
            return gpu
    raise ConfigError(f"{source}: there is no GPU {index}: {_where(host)}", reason="gpu_choice")


def _by_uuid(host: Sequence[GpuInfo], token: str, source: str) -> GpuInfo:
    # CUDA accepts any unique prefix of a UUID ("GPU-3b1f"); so do we.
    matches = [g for g in host if g.uuid.lower().startswith(token.lower())]
    if len(matches) == 1:
        return matches[0]
    if token.upper().startswith("MIG-"):
        why = "MIG instances are not GPUs a worker can serve; name the GPU"
    elif matches:
        why = f"it matches {len(matches)} GPUs"
    else:
        why = f"no GPU has that UUID ({_where(host)})"
    raise ConfigError(f"{source}: {token!r}: {why}", reason="gpu_choice")


def _visible(host: Sequence[GpuInfo], value: str) -> list[GpuInfo]:
    """The GPUs ``CUDA_VISIBLE_DEVICES=value`` names, read as CUDA reads it: a comma list of
    indices or UUIDs, where a negative number ends the list (``-1``: no GPU at all)."""
    source = f"CUDA_VISIBLE_DEVICES={value}"
    chosen: list[GpuInfo] = []
    for token in (t.strip() for t in value.split(",")):
        if not token:
            continue
        if token.lstrip("-").isdigit():
            if int(token) < 0:
                break
            chosen.append(_by_index(host, int(token), source))
        else:
            chosen.append(_by_uuid(host, token, source))
    return chosen


def choose_gpus(
    host: Sequence[GpuInfo], *, indices: Sequence[int] | None, visible_devices: str | None
) -> GpuChoice:
    """The worker's GPUs: ``indices`` (the ``gpus`` setting) if given, else those
    ``visible_devices`` (``CUDA_VISIBLE_DEVICES``) names, else all of ``host``.

    A CUDA_VISIBLE_DEVICES inherited on a host without GPUs (a CPU box, a container with no
    device) makes a CPU worker, as CUDA itself would; everywhere else a GPU that is not there
    is a `ConfigError`."""
    if indices is not None:
        chosen = [_by_index(host, i, "gpus (--gpu)") for i in indices]
    elif visible_devices is None or not host:
        return GpuChoice()
    else:
        chosen = _visible(host, visible_devices)
    uuids = [g.uuid for g in chosen]
    if len(set(uuids)) != len(uuids):
        raise ConfigError(f"a GPU is named twice in {uuids}", reason="gpu_choice")
    order = [g.uuid for g in host]
    return GpuChoice(uuids=tuple(sorted(uuids, key=order.index)))


def host_indices(device_indices: Sequence[int], reported: Sequence[GpuInfo]) -> list[int]:
    """The host's NVML indices of the GPUs at ``device_indices`` in this worker's report
    (ValueError naming how many it has when one is past its end)."""
    if missing := [i for i in device_indices if not 0 <= i < len(reported)]:
        raise ValueError(
            f"this worker has no GPU {missing}: it serves {len(reported)} "
            f"(device indices 0 to {len(reported) - 1})"
            if reported
            else f"this worker has no GPU {missing}: it serves none"
        )
    return [reported[i].index for i in device_indices]
