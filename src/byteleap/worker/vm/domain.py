"""The libvirt KVM domain of a VM lease, rendered from a ``VmSpec``, and the policy every
domain we define must meet. Pure: no I/O.

The domain: host-passthrough CPU (the guest sees the host's real CPU model, which CUDA
libraries tune for), q35 machine, memory and vCPUs from the spec, a virtio qcow2 overlay
layered on the read-only base image, the NoCloud seed as a read-only CD-ROM, a virtio NIC on a
libvirt network, one VFIO ``<hostdev>`` per leased GPU (``managed='yes'``: libvirt detaches it
from the host driver and gives it back on destroy), KVM hidden from the guest so NVIDIA's
driver loads, no memory balloon (VFIO pins guest memory anyway), and a serial console as the
only console: no ``<graphics>`` (VNC, SPICE) and a ``none`` video model, so nothing listens on a
host port for a screen.

The XML is built with ElementTree, never by string formatting, so no value can add markup.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Literal

from byteleap.worker.vm.errors import VmPolicyError
from byteleap.worker.vm.spec import VmSpec

METADATA_NS = "urn:byteleap:vm-lease:1"
_QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

DomainType = Literal["kvm", "qemu"]

ET.register_namespace("byteleap", METADATA_NS)


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, tag, attrs)
    if text is not None:
        element.text = text
    return element


def render_domain(spec: VmSpec, *, domain_type: DomainType = "kvm") -> str:
    """The domain XML of ``spec`` (``domain_type="qemu"`` only for hosts without KVM)."""
    domain = ET.Element("domain", {"type": domain_type})
    _sub(domain, "name", spec.name)
    metadata = _sub(domain, "metadata")
    ET.SubElement(metadata, f"{{{METADATA_NS}}}lease", {"id": spec.lease_id})
    _sub(domain, "memory", str(spec.memory_mib), unit="MiB")
    _sub(domain, "currentMemory", str(spec.memory_mib), unit="MiB")
    _sub(domain, "vcpu", str(spec.vcpus), placement="static")
    os_ = _sub(domain, "os")
    _sub(os_, "type", "hvm", arch="x86_64", machine="q35")
    _sub(os_, "boot", dev="hd")
    features = _sub(domain, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    if spec.gpus:
        _sub(_sub(features, "kvm"), "hidden", state="on")
    _sub(domain, "cpu", mode="host-passthrough", check="none", migratable="off")
    _sub(domain, "clock", offset="utc")
    _sub(domain, "on_poweroff", "destroy")
    _sub(domain, "on_reboot", "restart")
    _sub(domain, "on_crash", "destroy")
    devices = _sub(domain, "devices")
    _disks(devices, spec)
    interface = _sub(devices, "interface", type="network")
    _sub(interface, "source", network=spec.network)
    _sub(interface, "model", type="virtio")
    _sub(_sub(devices, "serial", type="pty"), "target", port="0")
    _sub(_sub(devices, "console", type="pty"), "target", type="serial", port="0")
    for address in spec.pci_addresses():
        hostdev = _sub(devices, "hostdev", mode="subsystem", type="pci", managed="yes")
        _sub(_sub(hostdev, "source"), "address", **address.xml_attributes())
    _sub(_sub(devices, "video"), "model", type="none")
    _sub(devices, "memballoon", model="none")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    ET.indent(domain)
    return ET.tostring(domain, encoding="unicode") + "\n"


def _disks(devices: ET.Element, spec: VmSpec) -> None:
    disk = _sub(devices, "disk", type="file", device="disk")
    _sub(disk, "driver", name="qemu", type="qcow2", discard="unmap")
    _sub(disk, "source", file=spec.overlay)
    backing = _sub(disk, "backingStore", type="file")
    _sub(backing, "format", type="qcow2")
    _sub(backing, "source", file=spec.base_image)
    _sub(disk, "target", dev="vda", bus="virtio")
    seed = _sub(devices, "disk", type="file", device="cdrom")
    _sub(seed, "driver", name="qemu", type="raw")
    _sub(seed, "source", file=spec.seed)
    _sub(seed, "target", dev="sda", bus="sata")
    _sub(seed, "readonly")


def check_domain(xml: str) -> None:
    """Raise ``VmPolicyError`` unless ``xml`` is a domain we would define: no graphics or
    video, only managed PCI hostdevs, a serial console, a host-passthrough CPU and no raw
    QEMU arguments."""
    try:
        domain = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise VmPolicyError(f"the domain is not well-formed XML: {exc}") from exc
    problems: list[str] = []
    if domain.tag != "domain":
        problems.append(f"the root is <{domain.tag}>, not <domain>")
    if domain.find(".//graphics") is not None:
        problems.append("it has <graphics> (a VNC/SPICE screen on a host port)")
    for model in domain.findall("./devices/video/model"):
        if model.get("type") != "none":
            problems.append(f"it has a {model.get('type')!r} video device")
    if any(ch.get("type") == "spicevmc" for ch in domain.iter("channel")):
        problems.append("it has a SPICE channel")
    for hostdev in domain.iter("hostdev"):
        shape = (hostdev.get("mode"), hostdev.get("type"), hostdev.get("managed"))
        if shape != ("subsystem", "pci", "yes"):
            problems.append(f"a <hostdev> is {shape}, not a managed PCI subsystem device")
    if domain.find("./devices/serial") is None or domain.find("./devices/console") is None:
        problems.append("it has no serial console")
    cpu = domain.find("./cpu")
    if cpu is None or cpu.get("mode") != "host-passthrough":
        problems.append("its CPU is not host-passthrough")
    if any(element.tag.startswith(f"{{{_QEMU_NS}}}") for element in domain.iter()):
        problems.append("it passes raw QEMU arguments")
    if problems:
        raise VmPolicyError("the domain breaks the VM policy: " + "; ".join(problems))
