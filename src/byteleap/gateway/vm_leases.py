"""The gateway's side of VM leases (see ``byteleap.worker.vm``): what placement must ask for,
what the miner is sent, and the VM's state shown on the lease.

A VM lease goes only to a worker that hosts VMs (``Requirements.vm``), needs at least the
vCPUs and memory it asks for, and passes through exactly the GPUs placement chose. Its state
and the way in (``ssh <user>@<address>``) come from its worker, through the miner's lease
status, read when the tenant looks at one lease (a list shows what the store has).
"""

from __future__ import annotations

import asyncio
import logging

from byteleap.gateway.scheduler import Requirements
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.protocol.api import LeaseSpec, LeaseView
from byteleap.protocol.vm_lease import VmLeaseRequest

log = logging.getLogger(__name__)


def lease_requirements(spec: LeaseSpec) -> Requirements:
    r = spec.resources
    vm = spec.kind == "vm"
    return Requirements(
        gpu_count=r.gpu_count,
        gpu_model=r.gpu_model,
        min_vram_mib=r.min_vram_mib,
        cpu_cores=max(r.cpu_cores, spec.vcpus or 0) if vm else r.cpu_cores,
        ram_mib=max(r.ram_mib, spec.memory_mib or 0) if vm else r.ram_mib,
        max_price_per_s=spec.max_price_per_s,
        vm=vm,
    )


def vm_request(spec: LeaseSpec, gpu_indices: tuple[int, ...]) -> VmLeaseRequest | None:
    if spec.kind != "vm":
        return None
    assert spec.ssh_public_key is not None  # LeaseSpec requires it for a vm lease
    return VmLeaseRequest(
        ssh_public_key=spec.ssh_public_key,
        vcpus=spec.vcpus,
        memory_mib=spec.memory_mib,
        gpu_indices=list(gpu_indices),
    )


async def with_vm_state(
    view: LeaseView, client: object, anonymous_id: str, timeout_s: float
) -> LeaseView:
    """``view`` with its VM's last reported state and way in; unchanged when the lease is no
    VM, has ended, or its miner does not answer within ``timeout_s``."""
    if view.spec.kind != "vm" or view.state.is_terminal or not isinstance(client, MinerClient):
        return view
    try:
        status = await asyncio.wait_for(client.lease_status(anonymous_id), timeout_s)
    except (MinerCallError, TimeoutError) as exc:
        log.info("vm state unavailable", extra={"lease": view.id, "why": repr(exc)})
        return view
    if status.vm is None:
        return view
    return view.model_copy(update={"vm": status.vm, "access": status.vm.ssh})
