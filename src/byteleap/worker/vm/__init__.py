"""VM leases: a lease served as a KVM virtual machine with the leased GPUs passed through.

Owns the pure rendering of the libvirt domain (``domain``) and of the NoCloud cloud-init data
(``cloud_init``), the strict checks on what a customer supplies (``spec``: SSH key, PCI
addresses, names), the policies every domain and user-data must meet, and the lifecycle
through libvirt-python when it is installed (``lifecycle``). Errors: ``errors.py``.
"""

from __future__ import annotations

from byteleap.protocol.ssh import check_ssh_public_key
from byteleap.worker.vm.cloud_init import check_user_data, render_meta_data, render_user_data
from byteleap.worker.vm.domain import check_domain, render_domain
from byteleap.worker.vm.errors import (
    BadVmSpecError,
    HypervisorUnavailableError,
    VmError,
    VmLifecycleError,
    VmPolicyError,
)
from byteleap.worker.vm.lifecycle import VmHost, VmState, prepare_disks
from byteleap.worker.vm.spec import PciAddress, VmSpec

__all__ = [
    "BadVmSpecError",
    "HypervisorUnavailableError",
    "PciAddress",
    "VmError",
    "VmHost",
    "VmLifecycleError",
    "VmPolicyError",
    "VmSpec",
    "VmState",
    "check_domain",
    "check_ssh_public_key",
    "check_user_data",
    "prepare_disks",
    "render_domain",
    "render_meta_data",
    "render_user_data",
]
