"""The miner's leases: which worker is reserved for which gateway, until when.

A leased worker is never challenged and takes no other work. The miner
countersigns a gateway's lease receipt only for a lease it holds, on that worker,
for a period inside the time the worker really was reserved and online — so a
receipt can never cover time in which the worker was gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from byteleap.miner.errors import LeaseRefused, UnknownLease, WorkerLost, WorkerTimeout
from byteleap.miner.links import WorkerLink
from byteleap.net.heartbeat import LeaseHeartbeat
from byteleap.net.messages import (
    LeaseLiveness,
    LeaseProbed,
    LeaseRequest,
    LeaseStatus,
    ProbeLease,
)
from byteleap.net.receipts import LeaseReceipt
from byteleap.protocol.vm_lease import VmAccess, VmReport

# Clocks of gateway and miner differ a little; a period may start or end this much outside.
SKEW_S = 5.0


@dataclass
class MinerLease:
    request: LeaseRequest
    gateway: str
    started_at: float
    ended_at: float | None = None
    detail: str = ""
    vm: VmAccess | None = None  # a vm lease's VM, as its worker last reported it

    @property
    def active(self) -> bool:
        return self.ended_at is None

    def status(self) -> LeaseStatus:
        return LeaseStatus(
            lease_id=self.request.lease_id,
            worker_id=self.request.worker_id,
            active=self.active,
            started_at=self.started_at,
            ends_at=self.request.ends_at,
            ended_at=self.ended_at,
            detail=self.detail,
            vm=self.vm,
        )


class LeaseProbes:
    """Liveness round trips to leased workers, each waiting on its own future with its own
    timeout, so a hung worker delays only the probe addressed to it."""

    def __init__(self) -> None:
        # probe id -> (worker asked, its answer)
        self._pending: dict[str, tuple[str, asyncio.Future[LeaseProbed]]] = {}

    async def ask(
        self,
        lease: MinerLease,
        link: WorkerLink | None,
        timeout_s: float,
        nonce: str | None = None,
    ) -> LeaseLiveness:
        """Probe the lease's worker; with the prober's ``nonce``, the worker's signed
        heartbeat for it is handed back as it came (the miner cannot sign one itself)."""

        def answer(
            alive: bool, reason: str, detail: str = "", heartbeat: LeaseHeartbeat | None = None
        ) -> LeaseLiveness:
            fields = {"lease_id": lease.request.lease_id, "alive": alive, "reason": reason}
            return LeaseLiveness.model_validate(
                {**fields, "detail": detail[:2000], "heartbeat": heartbeat}
            )

        if not lease.active:
            return answer(False, "ended", lease.detail or "the lease has ended")
        if link is None or link.closed:
            return answer(False, "closed", "the worker is not connected")
        probe_id = secrets.token_hex(16)
        future: asyncio.Future[LeaseProbed] = asyncio.get_running_loop().create_future()
        self._pending[probe_id] = (lease.request.worker_id, future)
        try:
            probe = ProbeLease(probe_id=probe_id, lease_id=lease.request.lease_id, nonce=nonce)
            link.post(probe.model_dump_json())
            probed = await asyncio.wait_for(future, timeout_s)
        except (WorkerLost, WorkerTimeout) as exc:  # gone, or its outbox is full
            return answer(False, "closed", str(exc))
        except TimeoutError:
            return answer(False, "timeout", f"no answer within {timeout_s:.1f}s")
        finally:
            self._pending.pop(probe_id, None)
        if not probed.alive:
            detail = probed.detail or "the worker says it is not alive"
            return answer(False, "refused", detail, probed.heartbeat)
        return answer(True, "ok", probed.detail, probed.heartbeat)

    def deliver(self, worker_id: str, message: LeaseProbed) -> bool:
        """Hand a worker's answer to its probe; a worker may answer only its own."""
        pending = self._pending.get(message.probe_id)
        if pending is None or pending[0] != worker_id:
            return False
        with contextlib.suppress(asyncio.InvalidStateError):
            pending[1].set_result(message)
        return True


class LeaseBook:
    def __init__(self) -> None:
        self._leases: dict[str, MinerLease] = {}
        self.probes = LeaseProbes()
        # Told once as each lease ends, whatever ended it (miner.networks takes its link down).
        self.on_end: list[Callable[[MinerLease], None]] = []

    def get(self, lease_id: str, gateway: str) -> MinerLease:
        lease = self._leases.get(lease_id)
        if lease is None or lease.gateway != gateway:  # another gateway's lease is not yours
            raise UnknownLease(f"no lease {lease_id} for this gateway")
        return lease

    def on_worker(self, worker_id: str) -> MinerLease | None:
        return next(
            (x for x in self._leases.values() if x.active and x.request.worker_id == worker_id),
            None,
        )

    def start(self, request: LeaseRequest, gateway: str, now: float) -> MinerLease:
        existing = self._leases.get(request.lease_id)
        if existing is not None:
            if existing.gateway == gateway and existing.request == request:
                return existing  # a retried request
            raise LeaseRefused(f"lease id {request.lease_id} is taken")
        if request.ends_at <= now:
            raise LeaseRefused("the lease would end before it starts")
        lease = MinerLease(request, gateway, started_at=now)
        self._leases[request.lease_id] = lease
        return lease

    def extend(self, lease_id: str, gateway: str, ends_at: float) -> MinerLease:
        lease = self.get(lease_id, gateway)
        if not lease.active or ends_at <= lease.request.ends_at:
            raise LeaseRefused("only an active lease can be extended, and only later")
        lease.request = lease.request.model_copy(update={"ends_at": ends_at})
        return lease

    def end(self, lease: MinerLease, now: float, detail: str) -> None:
        if lease.active:
            lease.ended_at, lease.detail = now, detail
            for hook in self.on_end:
                hook(lease)

    def report_vm(self, worker_id: str, report: VmReport, now: float) -> bool:
        """Keep a worker's report on its own vm lease's VM (a worker speaks for no other);
        a report may arrive after the lease ended (the VM's removal)."""
        lease = self._leases.get(report.lease_id)
        if lease is None or lease.request.worker_id != worker_id or lease.request.vm is None:
            return False
        lease.vm = report.access.model_copy(update={"reported_at": now})
        return True

    def due(self, now: float) -> list[MinerLease]:
        return [x for x in self._leases.values() if x.active and x.request.ends_at <= now]

    def check_receipt(self, receipt: LeaseReceipt, *, gateway: str, miner: str) -> None:
        """Refuse (``LeaseRefused``) any receipt this miner must not countersign."""
        lease = self._leases.get(receipt.lease_id)
        if lease is None or lease.gateway != gateway or receipt.gateway_hotkey != gateway:
            raise LeaseRefused("no such lease for this gateway")
        if receipt.miner_hotkey != miner or receipt.worker_id != lease.request.worker_id:
            raise LeaseRefused("the receipt names another miner or worker")
        until = lease.ended_at if lease.ended_at is not None else lease.request.ends_at
        if receipt.period_start < lease.started_at - SKEW_S or receipt.period_end > until + SKEW_S:
            raise LeaseRefused(
                "the receipt covers time outside the lease "
                f"({lease.started_at:.0f}..{until:.0f}): {lease.detail or 'not reserved then'}"
            )
