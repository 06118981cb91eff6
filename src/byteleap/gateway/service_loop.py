"""The loop that keeps every inference service right. Every pass of `ServiceLoop.run_once`:

1. asks each replica's miner how it runs (a lost worker, a crash → the replica failed);
2. probes every replica with an endpoint on its health path (`serving.health`);
3. per service: the autoscaler picks the desired count from the load
   (`serving.autoscale`), and the rollout planner which replicas to start and which to
   drain (`serving.rollout`) — that one plan scales, replaces and rolls out revisions;
   no more are started than the tenant's ``max_workers`` leaves room for (`quota_room`);
4. stops drained replicas once their requests finished (or after ``drain_timeout_s``);
5. bills every replica per period with a countersigned receipt and keeps its worker held.

It shares the in-memory state (``service_live``) with the customer's side (``service_desk``).
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

from byteleap.config import GatewaySettings
from byteleap.gateway.job_requests import requirements_of
from byteleap.gateway.miners import Supply
from byteleap.gateway.proxy import ReplicaProxy
from byteleap.gateway.quota_room import QuotaRoom
from byteleap.gateway.replicas import ReplicaOps
from byteleap.gateway.scheduler import NoPlacement, WorkerOffer, place_many
from byteleap.gateway.service_live import LiveReplica, ServiceLoad
from byteleap.gateway.serving import health as hs
from byteleap.gateway.serving.autoscale import Load, decide
from byteleap.gateway.serving.rollout import Slot, plan
from byteleap.net.messages import JobStatus, RunState
from byteleap.net.miner_client import MinerCallError
from byteleap.protocol.service_spec import ReplicaState, ServiceSpec, ServiceState
from byteleap.store import Store
from byteleap.store.leadership import others_load, report_load
from byteleap.store.quotas import quotas_of
from byteleap.store.services import (
    ReplicaRecord,
    ServiceRecord,
    advance_replica,
    list_replicas,
    list_services,
    recent_failures,
    update_service,
)

log = logging.getLogger(__name__)

LIVE_STATES = (ReplicaState.STARTING, ReplicaState.RUNNING, ReplicaState.DRAINING)
T = TypeVar("T")


async def _isolated(what: str, key: str, work: Callable[[], Awaitable[T]]) -> T | None:
    """``work()``'s result; None when it raised (logged with ``key``, the item it was for).

    ``work`` makes its awaitable only once this runs: a pass cancelled (at shutdown) before its
    gathered items started leaves no coroutine that was never awaited."""
    try:
        return await work()
    except Exception:  # one item's failure must not end the pass for the others
        log.exception("%s failed", what, extra={"item": key})
        return None


@dataclass
class ServiceLoop:
    store: Store
    pool: Supply
    settings: GatewaySettings
    ops: ReplicaOps
    proxy: ReplicaProxy
    clock: Callable[[], float]
    replicas: dict[str, LiveReplica]
    loads: dict[str, ServiceLoad]
    owners: dict[str, int]  # active service -> tenant id
    # whether this gateway replica runs the passes now (gateway.leadership)
    leading: Callable[[], bool] = lambda: True
    # this replica's name when there are several (each reports its own load on each service
    # to the store, and the one running the autoscaler adds them up); None: the only one
    gateway_name: str | None = None

    async def run_once(self, *, observe_only: bool = False) -> None:
        """One pass. Every service and every replica is handled inside its own guard: one
        that fails (logged with its id and reason) holds back no other tenant's.

        ``observe_only``: a gateway replica that does not run the passes still follows the
        replicas and probes their health, so it can route requests to the ready ones; it
        changes nothing (no scaling, starting, stopping, failing or billing)."""
        async with self.store.session() as s:
            listed = await list_services(
                s, states=[ServiceState.ACTIVE, ServiceState.DELETING], limit=10_000
            )
            records = await list_replicas(s, states=LIVE_STATES)
        specs: dict[str, ServiceSpec] = {}
        for x in listed:
            try:
                specs[x.id] = ServiceSpec.model_validate_json(x.spec_json)
            except ValueError:
                log.exception("service spec unreadable", extra={"service": x.id})
        services = [x for x in listed if x.id in specs]
        tenants = {x.id: x.tenant_id for x in services}
        self.owners.clear()  # shared with the desk, which checks ownership against it
        self.owners.update({x.id: x.tenant_id for x in services if x.state is ServiceState.ACTIVE})
        records = [r for r in records if r.service_id in tenants]
        statuses = await asyncio.gather(
            *(_isolated("replica status", r.id, partial(self.ops.status, r)) for r in records)
        )
        alive: list[ReplicaRecord] = []
        for record, status in zip(records, statuses, strict=True):
            follow = partial(self._follow, record, status, tenants[record.service_id], observe_only)
            if await _isolated("replica follow", record.id, follow) is not False:
                alive.append(record)
        await asyncio.gather(
            *(
                _isolated("replica probe", r.id, partial(self._probe, r, specs[r.service_id]))
                for r in alive
                if r.id in self.replicas
            )
        )
        if observe_only:
            now = self.clock()
            for service in services:
                serving = [self.replicas[r.id] for r in alive if r.service_id == service.id]
                report = partial(self._report, service.id, serving, now)
                await _isolated("service load", service.id, report)
            return
        offers: list[WorkerOffer] | None = None
        async with self.store.session() as s:
            room = QuotaRoom.of(await quotas_of(s, {x.tenant_id for x in services}))
        for service in services:
            mine = [r for r in alive if r.service_id == service.id]
            step = partial(self._reconcile, service, specs[service.id], mine, offers, room)
            reconciled = await _isolated("service reconcile", service.id, step)
            offers = reconciled if reconciled is not None else offers
        for record in alive:
            spec = specs[record.service_id]
            upkeep = partial(self._upkeep, record, tenants[record.service_id], spec)
            await _isolated("replica upkeep", record.id, upkeep)

    async def _follow(
        self,
        record: ReplicaRecord,
        status: JobStatus | MinerCallError | None,
        tenant: int,
        observe_only: bool = False,
    ) -> bool:
        """Take in what the miner says (None: nothing, the asking failed); False when the
        replica is gone (ended here, or only forgotten when ``observe_only``)."""
        now = self.clock()
        live = self.replicas.get(record.id)
        if live is None:  # new to this gateway process (a restart)
            h = hs.pending(now)
            if record.state is ReplicaState.DRAINING:
                h = h.to(hs.Phase.DRAINING, now)
            live = LiveReplica(record.id, record.service_id, h, alive_at=now)
            live.drain_from = now if record.state is ReplicaState.DRAINING else None
            self.replicas[record.id] = live
        if status is None:
            return True
        lost = isinstance(status, MinerCallError) and status.reason in {
            "unknown_job",
            "unknown_miner",
        }
        ended = isinstance(status, JobStatus) and status.state is not RunState.RUNNING
        if observe_only and (lost or ended):
            self.replicas.pop(record.id, None)  # the passes' holder ends it
            return False
        if isinstance(status, MinerCallError):
            if lost:
                await self._fail(record, tenant, f"its miner lost it ({status.reason})")
                return False
            return True  # unreachable now; the next pass asks again
        if status.state is not RunState.RUNNING:
            why = f"{status.state.value}: {status.detail}"
            if hs.never_ready(live.health):
                why = f"{hs.NEVER_READY}it ended before it was ready ({why})"
            await self._fail(record, tenant, why)
            return False
        live.alive_at = now
        if status.endpoint and live.endpoint is None:
            live.endpoint = status.endpoint
            live.health = hs.observe_endpoint(live.health, now)
            if record.state is ReplicaState.STARTING and not observe_only:
                async with self.store.session() as s:
                    await advance_replica(
                        s, record.id, ReplicaState.RUNNING, endpoint=live.endpoint
                    )
        return True

    async def _fail(
        self, record: ReplicaRecord, tenant: int, why: str, *, until: float | None = None
    ) -> None:
        """End the replica, billed until it was last seen alive (and never past ``until``)."""
        live = self.replicas.pop(record.id, None)
        alive_until = live.alive_at if live is not None else record.billed_until
        if until is not None:
            alive_until = min(alive_until, until)
        log.warning("replica failed", extra={"replica": record.id, "why": why})
        await self.ops.fail(record, tenant, why, alive_until=alive_until)

    async def _probe(self, record: ReplicaRecord, spec: ServiceSpec) -> None:
        live = self.replicas[record.id]
        if live.endpoint is None or not live.health.phase.is_live:
            return
        ok = await self.proxy.probe(live.endpoint, spec.health.path)
        live.health = hs.observe_probe(live.health, ok, self.clock(), spec.health)

    async def _reconcile(
        self,
        service: ServiceRecord,
        spec: ServiceSpec,
        records: list[ReplicaRecord],
        offers: list[WorkerOffer] | None,
        room: QuotaRoom,
    ) -> list[WorkerOffer] | None:
        now = self.clock()
        for record in records:
            live = self.replicas.get(record.id)
            if live is not None and hs.overdue(live.health, now, spec.health):
                why = hs.give_up_reason(live.health, spec.health)
                end = hs.deadline(live.health, spec.health)
                await self._fail(record, service.tenant_id, why, until=end)
        mine = [self.replicas[r.id] for r in records if r.id in self.replicas]
        desired = await self._autoscale(service, spec, mine, now)
        revision_of = {r.id: r.revision for r in records}
        slots = [
            Slot(r.id, revision_of[r.id], r.health.phase is hs.Phase.READY)
            for r in mine
            if r.health.phase.is_live
        ]
        rollout = spec.rollout
        step = plan(
            desired, service.revision, slots,
            max_surge=rollout.max_surge, max_unavailable=rollout.max_unavailable,
        )  # fmt: skip
        for replica_id in step.stop:
            await self._drain(self.replicas[replica_id], now)
        if step.start and not await self._stalled(service, mine, revision_of):
            count = min(step.start, room.workers_left(service.tenant_id))
            if count < step.start:
                log.info(
                    "replicas wait for the tenant's quota",
                    extra={"service": service.id, "why": room.why_waiting(service.tenant_id)},
                )
            if count > 0:
                if offers is None:
                    offers = [o for o in await self.pool.offers() if o.state == "idle"]
                started = await self._start(service, spec, count, records, offers)
                room.take_workers(service.tenant_id, started)
        if service.state is ServiceState.DELETING and not records:
            async with self.store.session() as s:
                await update_service(s, service.id, state=ServiceState.DELETED, updated_at=now)
            self.loads.pop(service.id, None)
            log.info("service deleted", extra={"service": service.id})
        return offers

    async def _stalled(
        self, service: ServiceRecord, mine: list[LiveReplica], revision_of: dict[str, int]
    ) -> bool:
        """Whether the service's revision starts no more replicas: its last ones all failed
        never ready (`serving.health.stall_reason`); said in the log once, not every pass."""
        ready = any(
            r.health.phase is hs.Phase.READY and revision_of[r.id] == service.revision for r in mine
        )
        limit = self.settings.services.max_unready_replicas
        async with self.store.session() as s:
            failures = await recent_failures(s, service.id, service.revision, limit)
        reason = hs.stall_reason(service.revision, failures, ready, limit)
        load = self.loads.setdefault(service.id, ServiceLoad())
        if reason != load.stalled:
            if reason is not None:
                log.warning("service stalled", extra={"service": service.id, "why": reason})
            load.stalled = reason
        return reason is not None

    async def _autoscale(
        self, service: ServiceRecord, spec: ServiceSpec, mine: list[LiveReplica], now: float
    ) -> int:
        if service.state is not ServiceState.ACTIVE:
            return 0
        load = self.loads.setdefault(service.id, ServiceLoad())
        seen = await self._report(service.id, mine, now)
        decision = decide(
            spec.autoscale, service.desired, await self._everyones(service.id, seen, now),
            load.memory, now,
        )  # fmt: skip
        load.memory = decision.memory
        if decision.desired != service.desired:
            log.info(
                "service scaled",
                extra={"service": service.id, "to": decision.desired, "why": decision.reason},
            )
            async with self.store.session() as s:
                await update_service(s, service.id, desired=decision.desired, updated_at=now)
        return decision.desired

    async def _report(self, service_id: str, mine: list[LiveReplica], now: float) -> Load:
        """Sample the requests in flight through this gateway; its load over the window,
        also reported to the store when there are several gateways."""
        load = self.loads.setdefault(service_id, ServiceLoad())
        ready = [r for r in mine if r.health.phase is hs.Phase.READY]
        load.in_flight.append((now, sum(r.outstanding for r in ready)))
        seen = load.over(now, self.settings.services.load_window_s)
        if self.gateway_name is not None:
            async with self.store.session() as s:
                await report_load(
                    s, service_id, self.gateway_name,
                    in_flight=seen.in_flight, latency_p90_ms=seen.latency_p90_ms, at=now,
                )  # fmt: skip
        return seen

    async def _everyones(self, service_id: str, mine: Load, now: float) -> Load:
        """``mine`` plus every other gateway's fresh report: requests reach a service through
        any replica, and the autoscaler must see them all."""
        if self.gateway_name is None:
            return mine
        fresh = now - max(
            self.settings.services.load_window_s, 3 * self.settings.services.interval_s
        )
        async with self.store.session() as s:
            others = await others_load(s, service_id, self.gateway_name, since=fresh)
        p90s = [p for p in (mine.latency_p90_ms, *(p for _, p in others)) if p is not None]
        return Load(
            in_flight=mine.in_flight + sum(n for n, _ in others),
            latency_p90_ms=max(p90s) if p90s else None,
        )

    async def _drain(self, live: LiveReplica, now: float) -> None:
        live.health = live.health.to(hs.Phase.DRAINING, now)
        live.drain_from = now
        async with self.store.session() as s:
            await advance_replica(s, live.id, ReplicaState.DRAINING)

    async def _start(
        self,
        service: ServiceRecord,
        spec: ServiceSpec,
        count: int,
        records: list[ReplicaRecord],
        offers: list[WorkerOffer],
    ) -> int:
        """Start up to ``count`` replicas on ``offers``; how many started (each holds one
        worker; one that did not start holds none)."""
        spread = Counter(r.miner_hotkey for r in records)
        chosen = place_many(requirements_of(spec), count, offers, spread=spread, partial=True)
        if isinstance(chosen, NoPlacement):
            log.info(
                "no worker for a replica", extra={"service": service.id, "why": chosen.message}
            )
            return 0
        started = 0
        for placement in chosen.placements:
            offers.remove(placement.worker)
            record = await self.ops.start(
                service.id, service.tenant_id, service.revision, spec, placement
            )
            if record is not None:
                started += 1
                now = self.clock()
                self.replicas[record.id] = LiveReplica(
                    record.id, service.id, hs.pending(now), alive_at=now
                )
        return started

    async def _upkeep(self, record: ReplicaRecord, tenant: int, spec: ServiceSpec) -> None:
        """Stop a drained replica, or keep its worker held and bill it."""
        live = self.replicas.get(record.id)
        if live is None:
            return
        if live.health.phase is hs.Phase.DRAINING:
            waited = self.clock() - (live.drain_from or 0.0)
            if live.outstanding == 0 or waited >= self.settings.services.drain_timeout_s:
                self.replicas.pop(record.id, None)
                await self.ops.stop(record, tenant)
            return
        await self.ops.keep_reserved(record)
        if not await self.ops.bill_due(record, tenant):
            await self._fail(record, tenant, "its miner refused the receipt")
        elif not await self.ops.fund_next(record, tenant):
            await self._fail(record, tenant, "the balance does not cover its next period")

    async def run(self) -> None:
        """Reconcile every ``services.interval_s`` until cancelled."""
        while True:
            try:
                await self.run_once(observe_only=not self.leading())
            except Exception:  # one bad pass must not stop the services
                log.exception("service pass failed")
            await asyncio.sleep(self.settings.services.interval_s)
