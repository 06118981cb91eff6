"""Leases: reserve a worker, bill it per period with signed receipts, end it.

Every billed period becomes a `LeaseReceipt` that the gateway signs and the miner
countersigns (the miner refuses time its worker was not really reserved and
online); the receipt is written to the validator's store, where scoring reads
it as verified lease revenue, and the tenant is charged the same amount.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from byteleap import metrics
from byteleap.cloud.gateway.errors import (
    Conflict,
    InvalidSpec,
    NoCapacity,
    NotFound,
    PaymentRequired,
)
from byteleap.cloud.gateway.miners import Supply
from byteleap.cloud.gateway.models import LeaseSpec, LeaseState, LeaseView
from byteleap.cloud.gateway.port import Tenant
from byteleap.cloud.gateway.vm_leases import lease_requirements, vm_request, with_vm_state
from byteleap.cloud.receipts import (
    MICRO,
    ReceiptSigner,
    anonymous_lease_id,
    new_receipt,
    sign_as_gateway,
)
from byteleap.cloud.scheduler import NoPlacement, place
from byteleap.config import GatewaySettings
from byteleap.net.messages import LeaseRequest
from byteleap.store import RecordNotFound, Store
from byteleap.store.cloud import charge, get_tenant
from byteleap.store.leases import (
    LeaseRecord,
    end_lease,
    extend_lease,
    get_lease,
    insert_lease,
    list_leases,
    record_billing,
)
from byteleap.store.receipts import ReceiptRecord, record_receipt
from byteleap.validator.miner_client import MinerCallError

log = logging.getLogger(__name__)

SECRET_FILE = "lease_id_secret"
CURRENCY = "TAO"


def lease_secret(home: Path) -> bytes:
    """The key that makes lease ids anonymous on the wire; kept so ids survive restarts."""
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(secrets.token_bytes(32))
    return path.read_bytes()


def view_of(lease: LeaseRecord) -> LeaseView:
    return LeaseView(
        id=lease.id,
        state=lease.state,
        spec=LeaseSpec.model_validate_json(lease.spec_json),
        worker_id=lease.worker_id,
        miner_hotkey=lease.miner_hotkey,
        gpu_model=lease.gpu_model,
        gpu_count=lease.gpu_count,
        price_per_s=lease.price_per_s,
        created_at=lease.created_at,
        ends_at=lease.ends_at,
        ended_at=lease.ended_at,
        billed_until=lease.billed_until,
        cost=lease.cost,
        receipts=lease.receipts,
    )


class LeaseHealthGate(Protocol):
    """Liveness (see liveness.py): how far a lease may be billed, and its health shown."""

    async def billable_until(self, lease: LeaseRecord) -> float: ...
    async def with_health(self, views: Sequence[LeaseView]) -> list[LeaseView]: ...


class LeaseNetworkHooks(Protocol):
    """Tenants' private networks (networks_api.py): told when a lease is stored and ended."""

    async def started(self, lease: LeaseRecord) -> None: ...
    async def ended(self, lease: LeaseRecord) -> None: ...


@dataclass
class LeaseDesk:
    store: Store
    pool: Supply
    settings: GatewaySettings
    hotkey: ReceiptSigner
    netuid: int
    secret: bytes
    bill_period_s: float = 60.0
    clock: Callable[[], float] = time.time
    # None: every lease is billed up to now (no liveness probes)
    liveness: LeaseHealthGate | None = None
    # None: no private networks (a lease asking for one is refused)
    networks: LeaseNetworkHooks | None = None

    async def _shown(self, views: list[LeaseView]) -> list[LeaseView]:
        return views if self.liveness is None else await self.liveness.with_health(views)

    async def _billable(self, lease: LeaseRecord, until: float) -> float:
        if self.liveness is None:
            return until
        return min(until, await self.liveness.billable_until(lease))

    def anonymous_id(self, lease_id: str) -> str:
        return anonymous_lease_id(lease_id, self.secret)

    async def create(self, tenant: Tenant, spec: LeaseSpec) -> LeaseView:
        if spec.network is not None and self.networks is None:
            raise InvalidSpec("this gateway runs no private networks", field="network")
        r = spec.resources
        requirements = lease_requirements(spec)
        offers = [o for o in await self.pool.offers() if o.state == "idle"]
        choice = place(requirements, offers)
        if isinstance(choice, NoPlacement):
            raise NoCapacity(f"no worker can take this lease now: {choice.message}")
        async with self.store.session() as s:
            balance = (await get_tenant(s, tenant.id)).balance
        if balance < choice.price_per_s * spec.duration_s:
            raise PaymentRequired(
                f"balance {balance:.6f} does not cover {spec.duration_s:.0f}s "
                f"at {choice.price_per_s:.6f}/s"
            )
        offer = choice.worker
        units = r.gpu_count or r.cpu_cores  # GPUs, or cores for a CPU lease
        now = math.floor(self.clock())
        record = LeaseRecord(
            id="lease_" + secrets.token_hex(12),
            tenant_id=tenant.id,
            state=LeaseState.ACTIVE,
            spec_json=spec.model_dump_json(),
            worker_id=offer.worker_id,
            miner_hotkey=offer.miner_hotkey,
            gpu_model=offer.gpus[0].model if r.gpu_count else "cpu",
            gpu_count=units,
            price_per_s=choice.price_per_s,
            unit_price_micro=max(1, round(choice.price_per_s / units * MICRO)),
            created_at=now,
            ends_at=now + math.ceil(spec.duration_s),
            ended_at=None,
            billed_until=now,
            cost=0.0,
            receipts=0,
        )
        request = LeaseRequest(
            lease_id=self.anonymous_id(record.id),
            worker_id=offer.worker_id,
            ends_at=record.ends_at,
            kind=spec.kind,
            vm=vm_request(spec, choice.gpu_indices),
        )
        try:
            client = await self.pool.client(offer.miner_hotkey)
            await client.start_lease(request)
        except MinerCallError as exc:
            raise NoCapacity(f"the worker could not be reserved: {exc.reason}") from None
        async with self.store.session() as s:
            await insert_lease(s, record)
        if self.networks is not None:
            await self.networks.started(record)
        metrics.GATEWAY_LEASES.labels("created").inc()
        log.info("lease started", extra={"lease": record.id, "worker": offer.worker_id})
        return view_of(record)

    async def _own(self, tenant: Tenant, lease_id: str) -> LeaseRecord:
        try:
            async with self.store.session() as s:
                return await get_lease(s, lease_id, tenant_id=tenant.id)
        except RecordNotFound:
            raise NotFound(f"no lease {lease_id}") from None

    async def get(self, tenant: Tenant, lease_id: str) -> LeaseView:
        lease = await self._own(tenant, lease_id)
        view = (await self._shown([view_of(lease)]))[0]
        if view.spec.kind != "vm":
            return view
        try:
            client = await self.pool.client(lease.miner_hotkey)
        except MinerCallError:
            return view
        return await with_vm_state(
            view, client, self.anonymous_id(lease.id), self.settings.miner_timeout_s
        )

    async def list(self, tenant: Tenant, *, limit: int = 100) -> list[LeaseView]:
        async with self.store.session() as s:
            leases = await list_leases(s, tenant_id=tenant.id, limit=max(1, min(limit, 1000)))
        return await self._shown([view_of(x) for x in leases])

    async def extend(self, tenant: Tenant, lease_id: str, seconds: float) -> LeaseView:
        lease = await self._own(tenant, lease_id)
        if lease.state.is_terminal:
            raise Conflict(f"lease {lease_id} already ended ({lease.state.value})")
        ends_at = lease.ends_at + math.ceil(seconds)
        async with self.store.session() as s:
            balance = (await get_tenant(s, tenant.id)).balance
        if balance < (ends_at - lease.billed_until) * lease.price_per_s:
            raise PaymentRequired("the balance does not cover the longer lease")
        try:
            client = await self.pool.client(lease.miner_hotkey)
            await client.extend_lease(self.anonymous_id(lease.id), ends_at)
        except MinerCallError as exc:
            raise Conflict(f"the miner refused the extension: {exc.reason}") from None
        async with self.store.session() as s:
            return view_of(await extend_lease(s, lease.id, ends_at=ends_at))

    async def release(self, tenant: Tenant, lease_id: str) -> LeaseView:
        lease = await self._own(tenant, lease_id)
        if lease.state.is_terminal:
            raise Conflict(f"lease {lease_id} already ended ({lease.state.value})")
        return (await self._shown([view_of(await self._end(lease, LeaseState.RELEASED))]))[0]

    async def fail(self, lease: LeaseRecord) -> LeaseRecord:
        """End a lease its worker can no longer serve (billed only as far as it may be)."""
        return await self._end(lease, LeaseState.FAILED)

    async def _end(self, lease: LeaseRecord, state: LeaseState) -> LeaseRecord:
        now = self.clock()
        if not await self._bill(lease, until=await self._billable(lease, min(now, lease.ends_at))):
            async with self.store.session() as s:
                return await get_lease(s, lease.id)  # it failed on the way out
        try:
            client = await self.pool.client(lease.miner_hotkey)
            await client.release_lease(self.anonymous_id(lease.id))
        except MinerCallError as exc:
            log.warning("release not delivered", extra={"lease": lease.id, "why": exc.reason})
        async with self.store.session() as s:
            ended = await end_lease(s, lease.id, state, at=now)
        if self.networks is not None:
            await self.networks.ended(ended)
        metrics.GATEWAY_LEASES.labels(state.value).inc()
        return ended

    async def bill_once(self) -> None:
        """Bill every active lease's finished periods; end the ones whose time is up."""
        async with self.store.session() as s:
            active = await list_leases(s, states=[LeaseState.ACTIVE], limit=10_000)
        now = self.clock()
        for lease in active:
            if now >= lease.ends_at:
                await self._end(lease, LeaseState.EXPIRED)
            elif now - lease.billed_until >= self.bill_period_s:
                until = await self._billable(lease, now)
                if until - lease.billed_until >= self.bill_period_s:
                    await self._bill(lease, until=until)

    async def _bill(self, lease: LeaseRecord, *, until: float) -> bool:
        """Bill ``[billed_until, until)``; False when the miner refused and the lease failed."""
        start, end = math.floor(lease.billed_until), math.floor(until)
        if end <= start:
            return True
        receipt = new_receipt(
            lease_id=self.anonymous_id(lease.id),
            netuid=self.netuid,
            gateway_hotkey=self.hotkey.ss58_address,
            miner_hotkey=lease.miner_hotkey,
            worker_id=lease.worker_id,
            gpu_model=lease.gpu_model,
            gpu_count=lease.gpu_count,
            period_start=start,
            period_end=end,
            unit_price_micro=lease.unit_price_micro,
            currency=CURRENCY,
        )
        signed = sign_as_gateway(receipt, self.hotkey)
        try:
            client = await self.pool.client(lease.miner_hotkey)
            countersigned = await client.countersign(signed)
        except MinerCallError as exc:
            # The miner will not vouch for this time (its worker was gone): no receipt, no
            # charge, and the lease cannot go on.
            log.warning("receipt refused; lease failed", extra={"lease": lease.id, "why": exc})
            async with self.store.session() as s:
                await end_lease(s, lease.id, LeaseState.FAILED, at=self.clock())
            metrics.GATEWAY_LEASES.labels(LeaseState.FAILED.value).inc()
            return False
        amount = countersigned.amount_micro / MICRO
        async with self.store.session() as s:
            await record_receipt(s, ReceiptRecord(**countersigned.model_dump()), at=end)
            await charge(s, lease.tenant_id, amount, reason="lease", job_id=lease.id, at=end)
            await record_billing(s, lease.id, billed_until=end, cost_delta=amount)
        return True
