"""Wire messages of a VM lease (see ``byteleap.worker.vm``): what the gateway asks of the
miner, what the miner tells the worker, and what the worker reports back.

gateway → miner: ``LeaseRequest.vm`` (a `VmLeaseRequest`), in the lease request itself.
miner → worker: `StartVm` once the lease is held, `StopVm` when it ends (released, expired).
worker → miner: `VmReport` after every change of the VM's state; the miner keeps the last
one and shows it in ``LeaseStatus.vm``.

The SSH key is checked here too (the same strict check as the gateway's), so a miner or a
worker never relays a key that could add lines to a guest's ``authorized_keys``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from byteleap.protocol.ids import HexId
from byteleap.protocol.ssh import MAX_SSH_KEY_CHARS, check_ssh_public_key

AnonymousLeaseId = HexId

#: libvirt's view of the domain (``worker.vm.VmState``), plus the worker's own steps around it.
VmPhase = Literal[
    "starting",  # disks being made, domain being defined
    "running",
    "paused",
    "shut_off",
    "crashed",
    "other",
    "absent",  # removed: undefined and its disks deleted
    "failed",  # could not be started; ``detail`` says why
]


class VmLeaseRequest(BaseModel):
    """The VM a lease asks for. ``gpu_indices`` are the worker's device indices (from its
    hardware report) placement chose; None for vCPUs or memory takes the worker's default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ssh_public_key: str = Field(max_length=MAX_SSH_KEY_CHARS)
    vcpus: int | None = Field(default=None, ge=1, le=512)
    memory_mib: int | None = Field(default=None, ge=256, le=4 << 20)
    gpu_indices: list[Annotated[int, Field(ge=0, le=63)]] = Field(
        default_factory=list, max_length=16
    )

    @field_validator("ssh_public_key")
    @classmethod
    def _key(cls, key: str) -> str:
        return check_ssh_public_key(key)


class _VmMsg(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    v: Literal[1] = 1


class StartVm(_VmMsg):
    """Miner → worker: make, define and start the lease's VM."""

    type: Literal["start_vm"] = "start_vm"
    lease_id: AnonymousLeaseId
    vm: VmLeaseRequest


class StopVm(_VmMsg):
    """Miner → worker: the lease is over; destroy and undefine its VM, delete its disks."""

    type: Literal["stop_vm"] = "stop_vm"
    lease_id: AnonymousLeaseId


class VmAccess(BaseModel):
    """A VM lease's state as the worker last reported it, and how to log in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: VmPhase
    domain: str | None = Field(default=None, max_length=64)  # the libvirt domain name
    username: str | None = Field(default=None, max_length=32)
    # The guest's address on the worker host's libvirt network (from its DHCP lease), when
    # known; it is reachable from that host, not from the internet.
    address: str | None = Field(default=None, max_length=64)
    detail: str = Field(default="", max_length=2000)
    reported_at: float | None = None

    @property
    def ssh(self) -> str | None:
        """``ssh <user>@<address>``, once the address is known."""
        if self.username is None or self.address is None:
            return None
        return f"ssh {self.username}@{self.address}"


class VmReport(_VmMsg):
    """Worker → miner: the lease's VM changed state."""

    type: Literal["vm_report"] = "vm_report"
    lease_id: AnonymousLeaseId
    access: VmAccess
