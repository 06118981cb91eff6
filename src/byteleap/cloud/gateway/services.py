"""The service desk: inference services for customers, and the loop that keeps them right.

Customers create, scale, update and delete services and send them requests (`invoke`:
least outstanding requests over the ready replicas, a request that could not reach its
replica is sent to another). Every pass of `run_once`:

1. asks each replica's miner how it runs (a lost worker, a crash → the replica failed);
2. probes every replica with an endpoint on its health path (`services.health`);
3. per service: the autoscaler picks the desired count from the load
   (`services.autoscale`), and the rollout planner which replicas to start and which to
   drain (`services.rollout`) — that one plan scales, replaces and rolls out revisions;
4. stops drained replicas once their requests finished (or after ``drain_timeout_s``);
5. bills every replica per period with a countersigned receipt and keeps its worker held.

What is only in memory (health, requests in flight, the autoscaler's memory) is rebuilt
after a restart: replicas come back as starting and turn ready on their next probes.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from byteleap.cloud.gateway.dispatch import requirements_of
from byteleap.cloud.gateway.errors import (
    Conflict,
    InvalidSpec,
    NoCapacity,
    NotFound,
    QuotaExceeded,
)
from byteleap.cloud.gateway.leasing import LeaseDesk
from byteleap.cloud.gateway.miners import Supply
from byteleap.cloud.gateway.port import Tenant
from byteleap.cloud.gateway.proxy import (
    IDEMPOTENT,
    ProxyRequest,
    ProxyResponse,
    ReplicaBroken,
    ReplicaProxy,
    ReplicaRefused,
    ReplicaUnreachable,
)
from byteleap.cloud.gateway.replicas import ReplicaOps
from byteleap.cloud.gateway.service_views import replica_view, service_view
from byteleap.cloud.scheduler import NoPlacement, WorkerOffer, place_many
from byteleap.cloud.services import health as hs
from byteleap.cloud.services.autoscale import Load, ScalerMemory, decide
from byteleap.cloud.services.balancer import Candidate, pick
from byteleap.cloud.services.rollout import Slot, plan
from byteleap.cloud.services.spec import (
    ReplicaState,
    ServiceScale,
    ServiceSpec,
    ServiceState,
    ServiceUpdate,
    ServiceView,
)
from byteleap.config import GatewaySettings
from byteleap.net.messages import JobState as MinerJobState
from byteleap.net.messages import JobStatus
from byteleap.store import RecordNotFound, Store
from byteleap.store.services import (
    ReplicaRecord,
    ServiceRecord,
    advance_replica,
    get_service,
    insert_service,
    list_replicas,
    list_services,
    update_service,
)
from byteleap.validator.miner_client import MinerCallError

log = logging.getLogger(__name__)

LIVE_STATES = (ReplicaState.STARTING, ReplicaState.RUNNING, ReplicaState.DRAINING)
MAX_TRIES = 3  # replicas one request may be sent to


@dataclass
class LiveReplica:
    """What the gateway knows of a replica beyond its record."""

    id: str
    service_id: str
    health: hs.Health
    alive_at: float  # the miner last said it runs
    endpoint: str | None = None
    outstanding: int = 0
    served: int = 0
    drain_from: float | None = None


@dataclass
class ServiceLoad:
    memory: ScalerMemory = field(default_factory=ScalerMemory)
    in_flight: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=10_000))
    latency_ms: deque[tuple[float, float]] = field(default_factory=lambda: deque(maxlen=10_000))

    def over(self, now: float, window_s: float) -> Load:
        for samples in (self.in_flight, self.latency_ms):
            while samples and samples[0][0] < now - window_s:
                samples.popleft()
        flights = [n for _, n in self.in_flight]
        latencies = sorted(ms for _, ms in self.latency_ms)
        p90 = latencies[int(0.9 * (len(latencies) - 1))] if latencies else None
        return Load(in_flight=sum(flights) / len(flights) if flights else 0.0, latency_p90_ms=p90)


def _revised(change: ServiceScale | ServiceUpdate, spec: ServiceSpec, whole: str) -> ServiceSpec:
    """``spec`` with ``change`` applied; `InvalidSpec` when the result breaks a rule of the
    whole spec that the change alone could not be checked against (min above the current max,
    PORT in the new env, ...). ``whole`` names the field when the rule spans several."""
    try:
        return change.apply(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(map(str, first["loc"])) or whole
        raise InvalidSpec(f"{where}: {first['msg']}", field=where) from None


@dataclass
class ServiceDesk:
    store: Store
    pool: Supply
    settings: GatewaySettings
    leasing: LeaseDesk
    clock: Callable[[], float] = time.time
    replicas: dict[str, LiveReplica] = field(default_factory=dict)
    loads: dict[str, ServiceLoad] = field(default_factory=dict)
    owners: dict[str, int] = field(default_factory=dict)  # active service -> tenant id
    ops: ReplicaOps = field(init=False)
    proxy: ReplicaProxy = field(init=False)

    def __post_init__(self) -> None:
        params = self.settings.services
        self.ops = ReplicaOps(
            self.store, self.pool, self.leasing, params, self.settings.bill_period_s, self.clock
        )
        self.proxy = ReplicaProxy(
            timeout_s=params.request_timeout_s,
            max_response_bytes=params.max_response_bytes,
            health_timeout_s=params.health_timeout_s,
        )

    # -- the customer's side ----------------------------------------------------------------

    async def create(self, tenant: Tenant, spec: ServiceSpec) -> ServiceView:
        async with self.store.session() as s:
            mine = await list_services(
                s, tenant_id=tenant.id, states=[ServiceState.ACTIVE], limit=1000
            )
            held = sum(
                ServiceSpec.model_validate_json(x.spec_json).autoscale.max_replicas for x in mine
            )
            cap = self.settings.services.max_replicas_per_tenant
            if held + spec.autoscale.max_replicas > cap:
                raise QuotaExceeded(f"at most {cap} replicas per tenant ({held} held)")
            now = self.clock()
            record = await insert_service(
                s,
                ServiceRecord(
                    id="svc_" + secrets.token_hex(12),
                    tenant_id=tenant.id,
                    name=spec.name,
                    state=ServiceState.ACTIVE,
                    spec_json=spec.model_dump_json(),
                    revision=1,
                    desired=spec.autoscale.min_replicas,
                    created_at=now,
                    updated_at=now,
                ),
            )
        self.owners[record.id] = tenant.id
        log.info("service created", extra={"service": record.id, "tenant": tenant.id})
        return await self._view(record)

    async def _own(self, tenant: Tenant, service_id: str) -> ServiceRecord:
        try:
            async with self.store.session() as s:
                return await get_service(s, service_id, tenant_id=tenant.id)
        except RecordNotFound:
            raise NotFound(f"no service {service_id}") from None

    async def _own_live(self, tenant: Tenant, service_id: str) -> ServiceRecord:
        service = await self._own(tenant, service_id)
        if service.state is not ServiceState.ACTIVE:
            raise Conflict(f"service {service_id} is {service.state.value}")
        return service

    async def _view(self, service: ServiceRecord) -> ServiceView:
        async with self.store.session() as s:
            records = await list_replicas(s, service_id=service.id)
        views = [replica_view(r, self.replicas.get(r.id)) for r in records]
        return service_view(service, views)

    async def get(self, tenant: Tenant, service_id: str) -> ServiceView:
        return await self._view(await self._own(tenant, service_id))

    async def list_for(self, tenant: Tenant, *, limit: int = 100) -> list[ServiceView]:
        async with self.store.session() as s:
            services = await list_services(s, tenant_id=tenant.id, limit=max(1, min(limit, 1000)))
        return [await self._view(x) for x in services]

    async def scale(self, tenant: Tenant, service_id: str, change: ServiceScale) -> ServiceView:
        service = await self._own_live(tenant, service_id)
        spec = _revised(change, ServiceSpec.model_validate_json(service.spec_json), "autoscale")
        bounds = spec.autoscale
        desired = max(bounds.min_replicas, min(bounds.max_replicas, service.desired))
        async with self.store.session() as s:
            updated = await update_service(
                s, service.id, spec_json=spec.model_dump_json(), desired=desired,
                updated_at=self.clock(),
            )  # fmt: skip
        return await self._view(updated)

    async def update(self, tenant: Tenant, service_id: str, change: ServiceUpdate) -> ServiceView:
        """A new revision; the loop rolls the replicas over to it."""
        service = await self._own_live(tenant, service_id)
        spec = _revised(change, ServiceSpec.model_validate_json(service.spec_json), "spec")
        async with self.store.session() as s:
            updated = await update_service(
                s, service.id, spec_json=spec.model_dump_json(), revision=service.revision + 1,
                updated_at=self.clock(),
            )  # fmt: skip
        log.info("service updated", extra={"service": service.id, "revision": updated.revision})
        return await self._view(updated)

    async def delete(self, tenant: Tenant, service_id: str) -> ServiceView:
        """Drain every replica; the service is deleted once the last one stopped."""
        service = await self._own_live(tenant, service_id)
        self.owners.pop(service.id, None)
        async with self.store.session() as s:
            updated = await update_service(
                s, service.id, state=ServiceState.DELETING, desired=0, updated_at=self.clock()
            )
        return await self._view(updated)

    async def invoke(self, tenant: Tenant, service_id: str, request: ProxyRequest) -> ProxyResponse:
        """Send the request to a ready replica; one that cannot be reached is skipped."""
        if self.owners.get(service_id) != tenant.id:
            await self._own_live(tenant, service_id)  # NotFound / Conflict, else it is new
            self.owners[service_id] = tenant.id
        tried: set[str] = set()
        load = self.loads.setdefault(service_id, ServiceLoad())
        for _ in range(MAX_TRIES):
            chosen = pick(self._candidates(service_id), exclude=tried)
            if chosen is None:
                break
            replica = self.replicas[chosen]
            assert replica.endpoint is not None
            replica.outstanding += 1
            try:
                response = await self.proxy.forward(replica.endpoint, request)
            except ReplicaRefused:
                replica.health = hs.observe_refused(replica.health, self.clock())
                tried.add(chosen)
                continue
            except ReplicaBroken:
                if request.method not in IDEMPOTENT:
                    raise
                tried.add(chosen)
                continue
            finally:
                replica.outstanding -= 1
            replica.served += 1
            load.latency_ms.append((self.clock(), response.seconds * 1000))
            return response
        if tried:
            raise ReplicaUnreachable(f"no replica of {service_id} could be reached")
        raise NoCapacity(f"service {service_id} has no ready replica now")

    def _candidates(self, service_id: str) -> Iterable[Candidate]:
        return (
            Candidate(r.id, r.outstanding, r.served)
            for r in self.replicas.values()
            if r.service_id == service_id and r.health.phase is hs.Phase.READY
        )

    # -- the loop -----------------------------------------------------------------------------

    async def run_once(self) -> None:
        async with self.store.session() as s:
            services = await list_services(
                s, states=[ServiceState.ACTIVE, ServiceState.DELETING], limit=10_000
            )
            records = await list_replicas(s, states=LIVE_STATES)
        tenants = {x.id: x.tenant_id for x in services}
        self.owners = {x.id: x.tenant_id for x in services if x.state is ServiceState.ACTIVE}
        specs = {x.id: ServiceSpec.model_validate_json(x.spec_json) for x in services}
        records = [r for r in records if r.service_id in tenants]
        statuses = await asyncio.gather(*(self.ops.status(r) for r in records))
        alive: list[ReplicaRecord] = []
        for record, status in zip(records, statuses, strict=True):
            if await self._follow(record, status, tenants[record.service_id]):
                alive.append(record)
        await asyncio.gather(
            *(self._probe(r, specs[r.service_id]) for r in alive if r.id in self.replicas)
        )
        offers: list[WorkerOffer] | None = None
        for service in services:
            mine = [r for r in alive if r.service_id == service.id]
            offers = await self._reconcile(service, specs[service.id], mine, offers)
        for record in alive:
            await self._upkeep(record, tenants[record.service_id], specs[record.service_id])

    async def _follow(
        self, record: ReplicaRecord, status: JobStatus | MinerCallError, tenant: int
    ) -> bool:
        """Take in what the miner says; False when the replica is gone."""
        now = self.clock()
        live = self.replicas.get(record.id)
        if live is None:  # new to this gateway process (a restart)
            h = hs.pending(now)
            if record.state is ReplicaState.DRAINING:
                h = h.to(hs.Phase.DRAINING, now)
            live = LiveReplica(record.id, record.service_id, h, alive_at=now)
            live.drain_from = now if record.state is ReplicaState.DRAINING else None
            self.replicas[record.id] = live
        if isinstance(status, MinerCallError):
            if status.reason in {"unknown_job", "unknown_miner"}:
                await self._fail(record, tenant, f"its miner lost it ({status.reason})")
                return False
            return True  # unreachable now; the next pass asks again
        if status.state is not MinerJobState.RUNNING:
            await self._fail(record, tenant, f"{status.state.value}: {status.detail}")
            return False
        live.alive_at = now
        if status.endpoint and live.endpoint is None:
            live.endpoint = status.endpoint
            live.health = hs.observe_endpoint(live.health, now)
            if record.state is ReplicaState.STARTING:
                async with self.store.session() as s:
                    await advance_replica(
                        s, record.id, ReplicaState.RUNNING, endpoint=live.endpoint
                    )
        return True

    async def _fail(self, record: ReplicaRecord, tenant: int, why: str) -> None:
        live = self.replicas.pop(record.id, None)
        alive_until = live.alive_at if live is not None else record.billed_until
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
    ) -> list[WorkerOffer] | None:
        now = self.clock()
        for record in records:
            live = self.replicas.get(record.id)
            if live is not None and hs.overdue(live.health, now, spec.health):
                await self._fail(record, service.tenant_id, f"{live.health.phase.value} too long")
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
        if step.start:
            if offers is None:
                offers = [o for o in await self.pool.offers() if o.state == "idle"]
            await self._start(service, spec, step.start, records, offers)
        if service.state is ServiceState.DELETING and not records:
            async with self.store.session() as s:
                await update_service(s, service.id, state=ServiceState.DELETED, updated_at=now)
            self.loads.pop(service.id, None)
            log.info("service deleted", extra={"service": service.id})
        return offers

    async def _autoscale(
        self, service: ServiceRecord, spec: ServiceSpec, mine: list[LiveReplica], now: float
    ) -> int:
        if service.state is not ServiceState.ACTIVE:
            return 0
        load = self.loads.setdefault(service.id, ServiceLoad())
        ready = [r for r in mine if r.health.phase is hs.Phase.READY]
        load.in_flight.append((now, sum(r.outstanding for r in ready)))
        decision = decide(
            spec.autoscale, service.desired, load.over(now, self.settings.services.load_window_s),
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
    ) -> None:
        spread = Counter(r.miner_hotkey for r in records)
        chosen = place_many(requirements_of(spec), count, offers, spread=spread, partial=True)
        if isinstance(chosen, NoPlacement):
            log.info(
                "no worker for a replica", extra={"service": service.id, "why": chosen.message}
            )
            return
        for placement in chosen.placements:
            offers.remove(placement.worker)
            record = await self.ops.start(
                service.id, service.tenant_id, service.revision, spec, placement
            )
            if record is not None:
                now = self.clock()
                self.replicas[record.id] = LiveReplica(
                    record.id, service.id, hs.pending(now), alive_at=now
                )

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

    async def run(self) -> None:
        """Reconcile every ``services.interval_s`` until cancelled."""
        while True:
            try:
                await self.run_once()
            except Exception:  # one bad pass must not stop the services
                log.exception("service pass failed")
            await asyncio.sleep(self.settings.services.interval_s)

    async def close(self) -> None:
        await self.proxy.close()
