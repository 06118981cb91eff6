"""Leases: reserve a worker, bill it per period with signed receipts, end it.

Every billed period becomes a `LeaseReceipt` that the gateway signs and the miner
countersigns (the miner refuses time its worker was not really reserved and
online); the receipt is written to the validator's store, where scoring reads
it as verified lease revenue, and the tenant is charged the same amount.
"""

from __future__ import annotations

import contextlib
import logging
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from byteleap import metrics
from byteleap.config import GatewaySettings
from byteleap.gateway.errors import (
    Conflict,
    InvalidSpec,
    NoCapacity,
    NotFound,
    PaymentRequired,
    QuotaExceeded,
)
from byteleap.gateway.miners import Supply
from byteleap.gateway.port import Tenant
from byteleap.gateway.scheduler import NoPlacement, place
from byteleap.gateway.vm_leases import lease_requirements, vm_request, with_vm_state
from byteleap.net.messages import LeaseRequest
from byteleap.net.miner_client import MinerCallError
from byteleap.net.receipts import (
    MICRO,
    ReceiptSigner,
    anonymous_lease_id,
    new_receipt,
    sign_as_gateway,
)
from byteleap.protocol.api import LeaseSpec, LeaseState, LeaseView
from byteleap.protocol.billing import DEFAULT_CURRENCY, format_amount, format_rate
from byteleap.store import AlreadyBilled, RecordNotFound, Store
from byteleap.store.leadership import shared_secret
from byteleap.store.leases import (
    LeaseRecord,
    end_lease,
    extend_lease,
    get_lease,
    insert_lease,
    list_leases,
    record_billing,
)
from byteleap.store.money import InsufficientFunds, available, charge, hold, payable, release
from byteleap.store.quotas import TenantQuota, locked_quota, quota_of
from byteleap.store.receipts import ReceiptRecord, record_receipt

log = logging.getLogger(__name__)

SECRET_FILE = "lease_id_secret"


def lease_secret(home: Path) -> bytes:
    """The key that makes lease ids anonymous on the wire; kept so ids survive restarts."""
    path = home / SECRET_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(secrets.token_bytes(32))
    return path.read_bytes()


async def shared_lease_secret(store: Store, home: Path) -> bytes:
    """The lease-id key every gateway replica of ``store`` uses: the first replica's (its
    file's, so a single gateway's ids survive the move to replicas), kept in the store."""
    async with store.session() as s:
        return await shared_secret(s, "lease-ids", lease_secret(home))


#: The store's ``gpu_model`` for a CPU lease, whose ``gpu_count`` then counts cores: the units
#: its receipts are priced by. The tenant's view says what was leased instead (`view_of`).
CPU_LEASE_MODEL = "cpu"


def view_of(lease: LeaseRecord, currency: str = DEFAULT_CURRENCY) -> LeaseView:
    spec = LeaseSpec.model_validate_json(lease.spec_json)
    on_cpu = lease.gpu_model == CPU_LEASE_MODEL
    return LeaseView(
        id=lease.id,
        state=lease.state,
        spec=spec,
        worker_id=lease.worker_id,
        miner_hotkey=lease.miner_hotkey,
        gpu_model=None if on_cpu else lease.gpu_model,
        gpu_count=0 if on_cpu else lease.gpu_count,
        cpu_cores=lease.gpu_count if on_cpu else spec.resources.cpu_cores,
        price_per_s=lease.price_per_s,
        created_at=lease.created_at,
        ends_at=lease.ends_at,
        ended_at=lease.ended_at,
        billed_until=lease.billed_until,
        cost=lease.cost,
        currency=currency,
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
    # told of every lease that ended, however (the gateway stops the jobs running on it)
    on_ended: Callable[[LeaseRecord], Awaitable[None]] | None = None

    async def _shown(self, views: list[LeaseView]) -> list[LeaseView]:
        return views if self.liveness is None else await self.liveness.with_health(views)

    async def _billable(self, lease: LeaseRecord, until: float) -> float:
        if self.liveness is None:
            return until
        return min(until, await self.liveness.billable_until(lease))

    def anonymous_id(self, lease_id: str) -> str:
        return anonymous_lease_id(lease_id, self.secret)

    async def create(self, tenant: Tenant, spec: LeaseSpec) -> LeaseView:
        """Reserve a worker for ``spec``; `QuotaExceeded` (nothing changed) when the tenant
        holds its ``max_workers`` already."""
        if spec.network is not None and self.networks is None:
            raise InvalidSpec("this gateway runs no private networks", field="network")
        async with self.store.session() as s:
            _check_room(await quota_of(s, tenant.id))
        r = spec.resources
        try:
            requirements = lease_requirements(spec)
        except ValidationError as exc:  # the spec's check missed a rule placement has
            first = exc.errors()[0]
            where = "resources." + ".".join(map(str, first["loc"]))
            raise InvalidSpec(f"{where}: {first['msg']}", field=where.rstrip(".")) from None
        offers = [o for o in await self.pool.offers() if o.state == "idle"]
        choice = place(requirements, offers)
        if isinstance(choice, NoPlacement):
            raise NoCapacity(f"no worker can take this lease now: {choice.message}")
        offer = choice.worker
        units = r.gpu_count or r.cpu_cores  # GPUs, or cores for a CPU lease
        unit_price_micro = max(1, round(choice.price_per_s / units * MICRO))
        # The whole term, at the price its receipts will carry, is held when it is stored.
        term_cost = unit_price_micro * units * math.ceil(spec.duration_s) / MICRO
        async with self.store.session() as s:
            free = await available(s, tenant.id)
        if free < term_cost:
            at = format_rate(choice.price_per_s, self.settings.currency)
            raise _short(free, term_cost, f"{spec.duration_s:.0f}s at {at}", self.settings.currency)
        now = math.floor(self.clock())
        record = LeaseRecord(
            id="lease_" + secrets.token_hex(12),
            tenant_id=tenant.id,
            state=LeaseState.ACTIVE,
            spec_json=spec.model_dump_json(),
            worker_id=offer.worker_id,
            miner_hotkey=offer.miner_hotkey,
            gpu_model=offer.gpus[0].model if r.gpu_count else CPU_LEASE_MODEL,
            gpu_count=units,
            price_per_s=choice.price_per_s,
            unit_price_micro=unit_price_micro,
            created_at=now,
            ends_at=now + math.ceil(spec.duration_s),
            ended_at=None,
            billed_until=now,
            cost=0.0,
            receipts=0,
            worker_public_key=offer.public_key,
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
        try:
            async with self.store.session() as s:
                # Counted again under the tenant's lock, in the transaction that stores the
                # lease: concurrent creates on any gateway replica pass one at a time.
                _check_room(await locked_quota(s, tenant.id))
                await insert_lease(s, record)
                await hold(s, tenant.id, record.id, term_cost, at=now)
        except QuotaExceeded:  # another create took the last worker since the check above
            with contextlib.suppress(MinerCallError):
                await (await self.pool.client(offer.miner_hotkey)).release_lease(request.lease_id)
            raise
        except InsufficientFunds:  # spent by another submit since the check above
            with contextlib.suppress(MinerCallError):
                await (await self.pool.client(offer.miner_hotkey)).release_lease(request.lease_id)
            async with self.store.session() as s:
                free = await available(s, tenant.id)
            raise _short(free, term_cost, "the lease's term", self.settings.currency) from None
        if self.networks is not None:
            await self.networks.started(record)
        metrics.GATEWAY_LEASES.labels("created").inc()
        log.info("lease started", extra={"lease": record.id, "worker": offer.worker_id})
        return view_of(record, self.settings.currency)

    async def _own(self, tenant: Tenant, lease_id: str) -> LeaseRecord:
        try:
            async with self.store.session() as s:
                return await get_lease(s, lease_id, tenant_id=tenant.id)
        except RecordNotFound:
            raise NotFound(f"no lease {lease_id}") from None

    async def get(self, tenant: Tenant, lease_id: str) -> LeaseView:
        lease = await self._own(tenant, lease_id)
        view = (await self._shown([view_of(lease, self.settings.currency)]))[0]
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
        return await self._shown([view_of(x, self.settings.currency) for x in leases])

    async def extend(self, tenant: Tenant, lease_id: str, seconds: float) -> LeaseView:
        lease = await self._own(tenant, lease_id)
        if lease.state.is_terminal:
            raise Conflict(f"lease {lease_id} already ended ({lease.state.value})")
        ends_at = lease.ends_at + math.ceil(seconds)
        more = lease.unit_price_micro * lease.gpu_count * (ends_at - lease.ends_at) / MICRO
        async with self.store.session() as s:
            free = await available(s, tenant.id)
        if free < more:
            raise _short(free, more, "the longer lease", self.settings.currency)
        try:
            client = await self.pool.client(lease.miner_hotkey)
            await client.extend_lease(self.anonymous_id(lease.id), ends_at)
        except MinerCallError as exc:
            raise Conflict(f"the miner refused the extension: {exc.reason}") from None
        try:
            async with self.store.session() as s:
                await hold(s, tenant.id, lease.id, more, at=self.clock())
                extended = await extend_lease(s, lease.id, ends_at=ends_at)
            return view_of(extended, self.settings.currency)
        except InsufficientFunds:
            # Spent meanwhile: the lease keeps its old end here, which ends it on the miner.
            async with self.store.session() as s:
                free = await available(s, tenant.id)
            raise _short(free, more, "the longer lease", self.settings.currency) from None

    async def release(self, tenant: Tenant, lease_id: str) -> LeaseView:
        lease = await self._own(tenant, lease_id)
        if lease.state.is_terminal:
            raise Conflict(f"lease {lease_id} already ended ({lease.state.value})")
        ended = await self._end(lease, LeaseState.RELEASED)
        return (await self._shown([view_of(ended, self.settings.currency)]))[0]

    async def fail(self, lease: LeaseRecord) -> LeaseRecord:
        """End a lease its worker can no longer serve (billed only as far as it may be)."""
        return await self._end(lease, LeaseState.FAILED)

    async def _end(self, lease: LeaseRecord, state: LeaseState) -> LeaseRecord:
        now = self.clock()
        # Every started second is billed (receipts count whole seconds): a lease of 0.56 s
        # costs one second, never nothing, and never more than its term.
        last = min(math.ceil(now), lease.ends_at)
        if not await self._bill(lease, until=await self._billable(lease, last)):
            async with self.store.session() as s:
                return await get_lease(s, lease.id)  # it failed on the way out
        try:
            client = await self.pool.client(lease.miner_hotkey)
            await client.release_lease(self.anonymous_id(lease.id))
        except MinerCallError as exc:
            log.warning("release not delivered", extra={"lease": lease.id, "why": exc.reason})
        async with self.store.session() as s:
            # The tenant's row before the lease's, as billing takes them: the other order
            # deadlocks against a billing pass on PostgreSQL.
            await release(s, lease.id)
            ended = await end_lease(s, lease.id, state, at=now)
        await self._ended(ended)
        metrics.GATEWAY_LEASES.labels(state.value).inc()
        return ended

    async def _ended(self, lease: LeaseRecord) -> None:
        if self.networks is not None:
            await self.networks.ended(lease)
        if self.on_ended is not None:
            await self.on_ended(lease)

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
            currency=self.settings.currency,
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
                await release(s, lease.id)  # tenant, then lease: see _end
                ended = await end_lease(s, lease.id, LeaseState.FAILED, at=self.clock())
            await self._ended(ended)
            metrics.GATEWAY_LEASES.labels(LeaseState.FAILED.value).inc()
            return False
        try:
            async with self.store.session() as s:
                await record_receipt(s, ReceiptRecord(**countersigned.model_dump()), at=end)
                amount = await payable(
                    s, lease.tenant_id, lease.id, countersigned.amount_micro / MICRO
                )
                await charge(s, lease.tenant_id, amount, reason="lease", job_id=lease.id, at=end)
                await record_billing(
                    s, lease.id, billed_until=end, cost_delta=amount, period_start=start
                )
        except AlreadyBilled:
            # Another gateway replica billed this period first; its receipt and charge stand
            # and this one's were rolled back together.
            log.info("lease period billed elsewhere", extra={"lease": lease.id})
        return True


def _short(free: float, cost: float, what: str, currency: str) -> PaymentRequired:
    return PaymentRequired(
        f"the balance not yet held ({format_amount(max(0.0, free), currency)}) does not cover "
        f"{what} ({format_amount(cost, currency)})"
    )


def _check_room(quota: TenantQuota) -> None:
    if quota.workers_free < 1:
        raise QuotaExceeded(
            quota.workers_message(), max_workers=quota.max_workers, held=quota.workers_held
        )
