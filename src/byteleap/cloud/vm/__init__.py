"""VM leases: a lease served as a KVM virtual machine with the leased GPUs passed through.

Owns the pure rendering of the libvirt domain (``domain``) and of the NoCloud cloud-init data
(``cloud_init``), the strict checks on what a customer supplies (``spec``: SSH key, PCI
addresses, names), the policies every domain and user-data must meet, and the lifecycle
through libvirt-python when it is installed (``lifecycle``). Errors: ``errors.py``.
"""

from __future__ import annotations

from byteleap.cloud.vm.cloud_init import check_user_data, render_meta_data, render_user_data
from byteleap.cloud.vm.domain import check_domain, render_domain
from byteleap.cloud.vm.errors import (
    BadVmSpecError,
    HypervisorUnavailableError,
    VmError,
    VmLifecycleError,
    VmPolicyError,
)
from byteleap.cloud.vm.lifecycle import VmHost, VmState, prepare_disks
from byteleap.cloud.vm.spec import PciAddress, VmSpec, check_ssh_public_key

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
