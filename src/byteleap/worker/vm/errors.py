"""Errors of the VM lease package.

ByteleapError
 └── VmError                  reason "vm"
      ├── BadVmSpecError      reason "bad_vm_spec": the spec is invalid; nothing was touched
      ├── VmPolicyError       reason "vm_policy": a domain or user-data breaks our rules
      │                       (graphics, a password, a non-PCI hostdev …)
      ├── HypervisorUnavailableError reason "hypervisor_unavailable": no libvirt here, or a
      │                       tool the disks need (qemu-img, genisoimage) is missing
      └── VmLifecycleError    reason "vm_lifecycle": libvirt refused a define/start/destroy
"""

from __future__ import annotations

from byteleap.errors import ByteleapError


class VmError(ByteleapError):
    """Base of every error raised by ``byteleap.worker.vm``."""

    reason = "vm"


class BadVmSpecError(VmError):
    reason = "bad_vm_spec"


class VmPolicyError(VmError):
    reason = "vm_policy"


class HypervisorUnavailableError(VmError):
    reason = "hypervisor_unavailable"


class VmLifecycleError(VmError):
    reason = "vm_lifecycle"
