"""One service replica on its miner: start, follow, bill, stop.

A replica is a lease plus a job: the gateway reserves the worker on its miner under the
replica's anonymous lease id (so the worker is never challenged and takes no other work),
then runs the service's program on that lease as a serving job (``serve``: the worker sets
``PORT`` and reports the endpoint). Billing is the lease's: every period a receipt the
gateway signs and the miner countersigns — only for time the worker really was reserved
and online — lands in the store, moves the miner's lease score, and is charged to the
tenant. The miner's lease is held ``lease_horizon_s`` ahead and pushed back as it goes.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from byteleap.config import ServiceSettings
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.miners import Supply
from byteleap.gateway.scheduler import Placement
from byteleap.net.messages import JobRequest, JobStatus, LeaseRequest
from byteleap.net.miner_client import MinerCallError
from byteleap.net.receipts import MICRO, new_receipt, sign_as_gateway
from byteleap.protocol.execution import MAX_TIMEOUT_S, ExecutionSpec
from byteleap.protocol.service_spec import ReplicaState, ServiceSpec
from byteleap.store import AlreadyBilled, Store
from byteleap.store.money import InsufficientFunds, charge, held_for, hold, payable, release
from byteleap.store.receipts import ReceiptRecord, record_receipt
from byteleap.store.services import (
    ReplicaRecord,
    advance_replica,
    get_replica,
    insert_replica,
    record_replica_billing,
)

log = logging.getLogger(__name__)


def new_replica_id() -> str:
    return "rep_" + secrets.token_hex(12)


@dataclass
class ReplicaOps:
    store: Store
    pool: Supply
    leasing: LeaseDesk  # the gateway's signing key, netuid and lease-id secret
    settings: ServiceSettings
    bill_period_s: float
    clock: Callable[[], float] = time.time
    # replica id -> until when its worker is reserved on the miner
    held_until: dict[str, float] = field(default_factory=dict)

    async def start(
        self, service_id: str, tenant_id: int, revision: int, spec: ServiceSpec, at: Placement
    ) -> ReplicaRecord | None:
        """Reserve the placed worker and start a replica on it; None when the miner refused."""
        offer = at.worker
        r = spec.resources
        units = r.gpu_count or r.cpu_cores
        now = math.floor(self.clock())
        record = ReplicaRecord(
            id=new_replica_id(),
            service_id=service_id,
            revision=revision,
            state=ReplicaState.STARTING,
            worker_id=offer.worker_id,
            miner_hotkey=offer.miner_hotkey,
            endpoint=None,
            gpu_model=offer.gpus[0].model if r.gpu_count else "cpu",
            gpu_count=units,
            price_per_s=at.price_per_s,
            unit_price_micro=max(1, round(at.price_per_s / units * MICRO)),
            created_at=now,
            ended_at=None,
            billed_until=now,
            cost=0.0,
            receipts=0,
            error=None,
        )
        anonymous = self.leasing.anonymous_id(record.id)
        held_until = now + self.settings.lease_horizon_s
        job = JobRequest(
            job_id=record.id,
            attempt=1,
            worker_id=offer.worker_id,
            lease_id=anonymous,
            executor="container" if spec.image else "process",
            image=spec.image,
            serve=True,
            spec=ExecutionSpec(
                command=spec.command,
                env=spec.env,
                inputs=spec.inputs,
                timeout_s=MAX_TIMEOUT_S,  # a week; then the replica is replaced
                memory_limit_mib=r.ram_mib,
                network="host",  # it must be reachable on the port the worker picked
                gpus=list(at.gpu_indices),  # the GPUs placement picked on that worker
            ),
        )
        try:
            async with self.store.session() as s:
                await hold(s, tenant_id, record.id, self._funded(record), at=now)
                await insert_replica(s, record)
        except InsufficientFunds as exc:
            log.info("replica not started", extra={"service": service_id, "why": str(exc)})
            return None
        try:
            client = await self.pool.client(offer.miner_hotkey)
            lease = LeaseRequest(lease_id=anonymous, worker_id=offer.worker_id, ends_at=held_until)
            await client.start_lease(lease)
        except MinerCallError as exc:
            await self._end(record, ReplicaState.FAILED, f"not reserved: {exc.reason}")
            return None
        try:
            await client.submit_job(job)
        except MinerCallError as exc:
            await self._release(record)
            await self._end(record, ReplicaState.FAILED, f"not started: {exc.reason}")
            return None
        self.held_until[record.id] = held_until
        log.info("replica started", extra={"replica": record.id, "worker": offer.worker_id})
        return record

    async def status(self, replica: ReplicaRecord) -> JobStatus | MinerCallError:
        try:
            client = await self.pool.client(replica.miner_hotkey)
            return await client.job_status(replica.id)
        except MinerCallError as exc:
            return exc

    async def stop(self, replica: ReplicaRecord, tenant_id: int) -> None:
        """Stop the program, bill up to now, give the worker back."""
        try:
            client = await self.pool.client(replica.miner_hotkey)
            await client.cancel_job(replica.id)
        except MinerCallError as exc:
            log.warning("replica stop not delivered", extra={"replica": replica.id, "why": exc})
        await self.bill(replica, tenant_id, until=self.clock())
        await self._release(replica)
        await self._end(replica, ReplicaState.STOPPED, None)

    async def fail(
        self, replica: ReplicaRecord, tenant_id: int, why: str, *, alive_until: float
    ) -> None:
        """The replica is gone (or given up on): bill the time it was alive, end it."""
        try:
            client = await self.pool.client(replica.miner_hotkey)
            await client.cancel_job(replica.id)
        except MinerCallError:
            pass  # its worker is most likely gone with it
        await self.bill(replica, tenant_id, until=alive_until)
        await self._release(replica)
        await self._end(replica, ReplicaState.FAILED, why)

    async def _release(self, replica: ReplicaRecord) -> None:
        self.held_until.pop(replica.id, None)
        try:
            client = await self.pool.client(replica.miner_hotkey)
            await client.release_lease(self.leasing.anonymous_id(replica.id))
        except MinerCallError as exc:
            log.info("replica lease not released", extra={"replica": replica.id, "why": exc})

    async def _end(self, replica: ReplicaRecord, state: ReplicaState, error: str | None) -> None:
        async with self.store.session() as s:
            # The tenant's row before the replica's, as billing takes them (no deadlock).
            await release(s, replica.id)
            await advance_replica(s, replica.id, state, ended_at=self.clock(), error=error)

    def _funded(self, replica: ReplicaRecord) -> float:
        """What a replica keeps held: the period being served and the next one, at the price
        its receipts carry (a pass may bill a period late)."""
        return replica.unit_price_micro * replica.gpu_count * 2 * self.bill_period_s / MICRO

    async def fund_next(self, replica: ReplicaRecord, tenant_id: int) -> bool:
        """Top the replica's hold back up after a bill; False when the balance cannot (the
        service must not run on time nobody pays for)."""
        try:
            async with self.store.session() as s:
                short = self._funded(replica) - await held_for(s, replica.id)
                if short > 0:
                    await hold(s, tenant_id, replica.id, short, at=self.clock())
        except InsufficientFunds:
            return False
        return True

    async def keep_reserved(self, replica: ReplicaRecord) -> None:
        """Push the miner-side lease back once half its horizon is used up."""
        now = self.clock()
        horizon = self.settings.lease_horizon_s
        if self.held_until.get(replica.id, 0.0) - now > horizon / 2:
            return
        ends_at = math.floor(now + horizon)
        try:
            client = await self.pool.client(replica.miner_hotkey)
            await client.extend_lease(self.leasing.anonymous_id(replica.id), ends_at)
            self.held_until[replica.id] = ends_at
        except MinerCallError as exc:
            log.warning("replica lease not extended", extra={"replica": replica.id, "why": exc})

    async def bill_due(self, replica: ReplicaRecord, tenant_id: int) -> bool:
        if self.clock() - replica.billed_until < self.bill_period_s:
            return True
        return await self.bill(replica, tenant_id, until=self.clock())

    async def bill(self, replica: ReplicaRecord, tenant_id: int, *, until: float) -> bool:
        """Bill ``[billed_until, until)`` with a countersigned receipt; False when refused."""
        async with self.store.session() as s:
            replica = await get_replica(s, replica.id)  # what this pass holds may be stale
        start, end = math.floor(replica.billed_until), math.floor(until)
        if end <= start:
            return True
        desk = self.leasing
        receipt = new_receipt(
            lease_id=desk.anonymous_id(replica.id),
            netuid=desk.netuid,
            gateway_hotkey=desk.hotkey.ss58_address,
            miner_hotkey=replica.miner_hotkey,
            worker_id=replica.worker_id,
            gpu_model=replica.gpu_model,
            gpu_count=replica.gpu_count,
            period_start=start,
            period_end=end,
            unit_price_micro=replica.unit_price_micro,
            currency=desk.settings.currency,
        )
        try:
            client = await self.pool.client(replica.miner_hotkey)
            countersigned = await client.countersign(sign_as_gateway(receipt, desk.hotkey))
        except MinerCallError as exc:
            # The miner will not vouch for this time: no receipt and no charge for it.
            log.warning("replica receipt refused", extra={"replica": replica.id, "why": exc})
            return False
        try:
            async with self.store.session() as s:
                await record_receipt(s, ReceiptRecord(**countersigned.model_dump()), at=end)
                amount = await payable(s, tenant_id, replica.id, countersigned.amount_micro / MICRO)
                await charge(s, tenant_id, amount, reason="service", job_id=replica.id, at=end)
                await record_replica_billing(
                    s, replica.id, billed_until=end, cost_delta=amount, period_start=start
                )
        except AlreadyBilled:  # another gateway replica billed it first (rolled back here)
            log.info("replica period billed elsewhere", extra={"replica": replica.id})
        return True
