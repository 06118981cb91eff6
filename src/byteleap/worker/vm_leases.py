"""The worker's VM leases: each vm lease its miner starts becomes a libvirt domain here.

On `StartVm` the worker builds a ``VmSpec`` (the lease's GPUs by their PCI addresses from the
hardware report, none on a CPU worker; its disks under ``disk_dir``), makes the disks, then
defines and starts the domain, and reports every step as a `VmReport`. It keeps reporting
until the guest's address is known (or ``address_wait_s`` passes), so the lease shows
``ssh <user>@<address>``. On `StopVm`, or when the link to the miner drops (the miner ends
every lease of a worker it lost), the domain is destroyed and undefined and its disks
deleted. A start and a stop of one lease never overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from byteleap.config import WorkerVmSettings
from byteleap.protocol.hardware import HardwareInventory
from byteleap.protocol.vm_lease import StartVm, VmAccess, VmPhase, VmReport
from byteleap.worker.gpu_choice import host_indices
from byteleap.worker.vm import VmError, VmHost, VmSpec, VmState, prepare_disks

log = logging.getLogger(__name__)

Send = Callable[[str], Awaitable[None]]


def pci_address(nvml_bus_id: str) -> str:
    """NVML's ``00000000:41:00.0`` as libvirt's ``0000:41:00.0`` (a 16-bit PCI domain)."""
    domain, sep, rest = nvml_bus_id.strip().lower().partition(":")
    if not sep:
        raise ValueError(f"{nvml_bus_id!r} is not a PCI bus id")
    return f"{int(domain, 16):04x}:{rest}"


def gpu_pci_addresses(hardware: HardwareInventory, indices: list[int]) -> list[str]:
    """The PCI addresses of the GPUs at ``indices`` in the worker's report (the device
    indices placement chose; on a worker serving GPU 3 alone, index 0 is GPU 3)."""
    host_indices(indices, hardware.gpus)  # a ValueError naming what the worker has
    return [pci_address(hardware.gpus[i].pci_bus_id) for i in indices]


def build_spec(
    settings: WorkerVmSettings, disk_dir: Path, message: StartVm, hardware: HardwareInventory
) -> VmSpec:
    """The lease's ``VmSpec`` (``BadVmSpecError`` or ``ValueError`` when it cannot be one)."""
    assert settings.base_image is not None  # enabled settings have one
    name = f"lease-{message.lease_id}"
    return VmSpec.parse(
        {
            "name": name,
            "lease_id": message.lease_id,
            "vcpus": message.vm.vcpus or settings.default_vcpus,
            "memory_mib": message.vm.memory_mib or settings.default_memory_mib,
            "gpus": gpu_pci_addresses(hardware, message.vm.gpu_indices),
            "ssh_public_key": message.vm.ssh_public_key,
            "username": settings.username,
            "base_image": str(settings.base_image.resolve()),
            "overlay": str(disk_dir / f"{name}.qcow2"),
            "seed": str(disk_dir / f"{name}-seed.iso"),
            "network": settings.network,
        }
    )


@dataclass
class VmLeases:
    settings: WorkerVmSettings
    home: Path
    poll_s: float = 2.0
    address_wait_s: float = 300.0
    specs: dict[str, VmSpec] = field(default_factory=dict)
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _host: VmHost | None = None

    @property
    def disk_dir(self) -> Path:
        return (self.settings.disk_dir or self.home / "vm").resolve()

    def unavailable(self) -> str | None:
        """Why this worker cannot host VM leases, or None when it can."""
        if not self.settings.enabled:
            return "vm leases are not enabled"
        image = self.settings.base_image
        if image is None or not image.is_file():
            return f"the base image {image} does not exist"
        if importlib.util.find_spec("libvirt") is None:
            return "libvirt-python is not installed (pip install 'byteleap[vm]')"
        return None

    def host(self) -> VmHost:
        if self._host is None:
            self._host = VmHost(self.settings.uri, domain_type=self.settings.domain_type)
        return self._host

    def _lock(self, lease_id: str) -> asyncio.Lock:
        return self._locks.setdefault(lease_id, asyncio.Lock())

    async def start(self, message: StartVm, hardware: HardwareInventory, send: Send) -> None:
        lease_id = message.lease_id
        async with self._lock(lease_id):
            if lease_id in self.specs:
                return  # a repeated start
            try:
                if why := self.unavailable():
                    raise VmError(why)
                spec = build_spec(self.settings, self.disk_dir, message, hardware)
            except (VmError, ValueError) as exc:
                await _report(send, lease_id, VmAccess(state="failed", detail=str(exc)[:2000]))
                return
            self.specs[lease_id] = spec
            await _report(send, lease_id, self._access(spec, "starting"))
            try:
                await asyncio.to_thread(self.disk_dir.mkdir, parents=True, exist_ok=True)
                await prepare_disks(spec)
                await self.host().define(spec)
                await self.host().start(spec.name)
            except (VmError, OSError) as exc:
                log.warning("vm lease did not start", extra={"lease": lease_id, "why": str(exc)})
                with contextlib.suppress(VmError):  # kept in ``specs``: a stop retries
                    await self._remove(lease_id)
                access = self._access(spec, "failed", detail=str(exc)[:2000])
                await _report(send, lease_id, access)
                return
            log.info("vm lease started", extra={"lease": lease_id, "domain": spec.name})
        await self._watch_until_reachable(lease_id, send)

    async def _watch_until_reachable(self, lease_id: str, send: Send) -> None:
        """Report the VM's state until its address is known (DHCP takes a boot's time)."""
        deadline = time.monotonic() + self.address_wait_s
        last: VmAccess | None = None
        while (spec := self.specs.get(lease_id)) is not None:
            try:
                access = await self.access(spec)
            except VmError as exc:
                access = self._access(spec, "other", detail=str(exc)[:2000])
            if self.specs.get(lease_id) is not spec:
                return  # stopped meanwhile: its removal was reported
            if access != last:
                await _report(send, lease_id, access)
                last = access
            if access.address is not None or time.monotonic() > deadline:
                return
            if access.state not in ("running", "paused"):
                return
            await asyncio.sleep(self.poll_s)

    async def access(self, spec: VmSpec) -> VmAccess:
        state = await self.host().state(spec.name)
        addresses = await self.host().addresses(spec.name) if state is VmState.RUNNING else []
        return self._access(spec, state.value, address=addresses[0] if addresses else None)

    def _access(
        self, spec: VmSpec, state: VmPhase | str, *, address: str | None = None, detail: str = ""
    ) -> VmAccess:
        return VmAccess.model_validate(
            {
                "state": state,
                "domain": spec.name,
                "username": spec.username,
                "address": address,
                "detail": detail,
            }
        )

    async def stop(self, lease_id: str, send: Send | None) -> None:
        async with self._lock(lease_id):
            spec = self.specs.get(lease_id)
            if spec is None:
                return
            try:
                await self._remove(lease_id)
            except VmError as exc:
                log.error("vm lease not removed", extra={"lease": lease_id, "why": str(exc)})
                if send is not None:
                    access = self._access(spec, "other", detail=f"not removed: {exc}"[:2000])
                    await _report(send, lease_id, access)
                return
            log.info("vm lease removed", extra={"lease": lease_id, "domain": spec.name})
            if send is not None:
                await _report(send, lease_id, self._access(spec, "absent"))
        self._locks.pop(lease_id, None)

    async def _remove(self, lease_id: str) -> None:
        spec = self.specs.pop(lease_id)
        try:
            await self.host().remove(spec)
        except VmError:
            self.specs[lease_id] = spec  # still there: a later stop may retry
            raise

    async def stop_all(self) -> None:
        """The link to the miner dropped: it ended this worker's leases, so end the VMs."""
        for lease_id in list(self.specs):
            await self.stop(lease_id, None)

    async def probe(self, lease_id: str) -> tuple[bool, str] | None:
        """(alive, detail) of a vm lease's VM for a liveness probe; None when no VM."""
        spec = self.specs.get(lease_id)
        if spec is None:
            return None
        try:
            state = await self.host().state(spec.name)
        except VmError as exc:
            return False, f"vm state unknown: {exc}"[:500]
        return state is VmState.RUNNING, f"vm {state.value}"

    def close(self) -> None:
        if self._host is not None:
            self._host.close()
            self._host = None


async def _report(send: Send, lease_id: str, access: VmAccess) -> None:
    with contextlib.suppress(Exception):  # the link is gone: the miner ends the lease anyway
        await send(VmReport(lease_id=lease_id, access=access).model_dump_json())
