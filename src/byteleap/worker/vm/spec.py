"""What a VM lease is made of (``VmSpec``) and the strict checks on what a customer supplies:
an SSH public key, the GPUs' PCI addresses, names. Pure: no I/O.

Everything here ends up inside XML or YAML documents that a hypervisor or a guest's
cloud-init acts on, so each value is checked against a narrow shape (not escaped and hoped
for): a key is one line, of a known type, that ``cryptography`` parses, with a plain comment;
a PCI address is ``DDDD:BB:SS.F`` in hex; names are DNS labels.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from byteleap.protocol.ssh import check_ssh_public_key
from byteleap.worker.vm.errors import BadVmSpecError

_PCI = re.compile(r"([0-9a-f]{4}):([0-9a-f]{2}):([01][0-9a-f])\.([0-7])")
_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")


class PciAddress(BaseModel):
    """A host PCI function, ``0000:41:00.0``, as libvirt's ``<address>`` wants it."""

    model_config = ConfigDict(frozen=True)

    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        match = _PCI.fullmatch(text.lower())
        if match is None:
            raise ValueError(f"{text!r} is not a PCI address like 0000:41:00.0")
        domain, bus, slot, function = (int(g, 16) for g in match.groups())
        if slot > 0x1F:
            raise ValueError(f"{text!r}: a PCI slot is at most 1f")
        return cls(domain=domain, bus=bus, slot=slot, function=function)

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"

    def xml_attributes(self) -> dict[str, str]:
        return {
            "domain": f"0x{self.domain:04x}",
            "bus": f"0x{self.bus:02x}",
            "slot": f"0x{self.slot:02x}",
            "function": f"0x{self.function:x}",
        }


def _absolute_path(path: str) -> str:
    pure = PurePosixPath(path)
    if not pure.is_absolute() or ".." in pure.parts or any(c in path for c in "\x00\n\r"):
        raise ValueError(f"{path!r} must be an absolute path without '..'")
    return pure.as_posix()


class VmSpec(BaseModel):
    """One VM lease on one host: its size, its GPUs, its disks and who may log in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str  # the libvirt domain name and the guest's hostname
    lease_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    vcpus: int = Field(ge=1, le=512)
    memory_mib: int = Field(ge=256, le=4 << 20)
    gpus: list[str] = Field(default_factory=list, max_length=16)  # PCI addresses
    ssh_public_key: str
    username: str = Field(default="byteleap", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    base_image: str  # a qcow2 the overlay is layered on; never written
    overlay: str  # the VM's own qcow2, backed by base_image
    seed: str  # the NoCloud seed ISO (volume label "cidata")
    network: str = Field(default="default", pattern=r"^[A-Za-z0-9_-]{1,64}$")

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not _NAME.fullmatch(name):
            raise ValueError(f"{name!r} is not a lowercase DNS label")
        return name

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, gpus: list[str]) -> list[str]:
        canonical = [str(PciAddress.parse(g)) for g in gpus]
        if len(set(canonical)) != len(canonical):
            raise ValueError("a GPU is listed twice")
        return canonical

    @field_validator("ssh_public_key")
    @classmethod
    def _key(cls, key: str) -> str:
        return check_ssh_public_key(key)

    @field_validator("base_image", "overlay", "seed")
    @classmethod
    def _paths(cls, path: str) -> str:
        return _absolute_path(path)

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> VmSpec:
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise BadVmSpecError(f"invalid VM spec: {exc}", errors=exc.errors()) from exc

    @model_validator(mode="after")
    def _three_files(self) -> VmSpec:
        if len({self.base_image, self.overlay, self.seed}) != 3:
            raise ValueError("base image, overlay and seed must be three different files")
        return self

    def pci_addresses(self) -> list[PciAddress]:
        return [PciAddress.parse(g) for g in self.gpus]
