"""The service desk: inference services for customers.

Customers create, scale, update and delete services and send them requests (`invoke`:
least outstanding requests over the ready replicas, a request that could not reach its
replica is sent to another). The loop that keeps them right is `service_loop.ServiceLoop`;
the desk runs it (`run`, `run_once`) over the in-memory state both share (`service_live`).
"""

from __future__ import annotations

import functools
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from pydantic import ValidationError

from byteleap.config import GatewaySettings
from byteleap.gateway.errors import (
    Conflict,
    InvalidSpec,
    NoCapacity,
    NotFound,
    PaymentRequired,
    QuotaExceeded,
)
from byteleap.gateway.job_requests import worst_price_per_s
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.miners import Supply
from byteleap.gateway.port import Tenant
from byteleap.gateway.proxy import (
    IDEMPOTENT,
    ProxyRequest,
    ProxyResponse,
    ReplicaBroken,
    ReplicaProxy,
    ReplicaRefused,
    ReplicaUnreachable,
)
from byteleap.gateway.replicas import ReplicaOps
from byteleap.gateway.service_live import LiveReplica, ServiceLoad
from byteleap.gateway.service_logs import service_logs
from byteleap.gateway.service_loop import ServiceLoop
from byteleap.gateway.service_views import replica_view, service_view
from byteleap.gateway.serving import health as hs
from byteleap.gateway.serving.balancer import Candidate, pick
from byteleap.protocol.billing import format_amount
from byteleap.protocol.service_spec import (
    ServiceLogs,
    ServiceScale,
    ServiceSpec,
    ServiceState,
    ServiceUpdate,
    ServiceView,
)
from byteleap.store import RecordNotFound, Store
from byteleap.store.money import available
from byteleap.store.quotas import quota_of
from byteleap.store.services import (
    ServiceRecord,
    get_service,
    insert_service,
    list_replicas,
    list_services,
    update_service,
)

log = logging.getLogger(__name__)

MAX_TRIES = 3  # replicas one request may be sent to


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


def _done(replica: LiveReplica) -> None:
    replica.outstanding -= 1


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
    loop: ServiceLoop = field(init=False)

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
        self.loop = ServiceLoop(
            self.store,
            self.pool,
            self.settings,
            self.ops,
            self.proxy,
            self.clock,
            self.replicas,
            self.loads,
            self.owners,
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
            # Each replica holds its own periods when it starts; a service whose first
            # period cannot be paid for is not created at all.
            first = (
                worst_price_per_s(spec, self.settings)
                * max(1, spec.autoscale.min_replicas)
                * self.settings.bill_period_s
            )
            free = await available(s, tenant.id)
            if free < first:
                unit = self.settings.currency
                raise PaymentRequired(
                    f"the balance not yet held ({format_amount(free, unit)}) does not cover "
                    f"the service's first period ({format_amount(first, unit)}: "
                    f"{self.settings.bill_period_s:g} s of "
                    f"{max(1, spec.autoscale.min_replicas)} replicas at the worst price)"
                )
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
            quota = await quota_of(s, service.tenant_id)
        views = [replica_view(r, self.replicas.get(r.id)) for r in records]
        return service_view(
            service, views, currency=self.settings.currency,
            max_unready=self.settings.services.max_unready_replicas, quota=quota,
        )  # fmt: skip

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

    async def logs(
        self, tenant: Tenant, service_id: str, *, after: int = 0, replica_id: str | None = None
    ) -> ServiceLogs:
        """Its recent replicas' log lines (a deleted service's too, while miners keep them)."""
        service = await self._own(tenant, service_id)
        return await service_logs(
            self.store, self.pool, service.id, after=after, replica_id=replica_id
        )

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
        """Send the request to a ready replica; one that cannot be reached before its answer
        began is skipped. The caller reads the answer's body and closes it."""
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
                replica.outstanding -= 1
                replica.health = hs.observe_refused(replica.health, self.clock())
                tried.add(chosen)
                continue
            except ReplicaBroken:
                replica.outstanding -= 1
                if request.method not in IDEMPOTENT:
                    raise
                tried.add(chosen)
                continue
            except BaseException:
                replica.outstanding -= 1
                raise
            # In flight until its body is taken or dropped: a stream holds the replica.
            response.on_close.append(functools.partial(_done, replica))
            replica.served += 1
            load.latency_ms.append((self.clock(), response.seconds * 1000))
            return response
        if tried:
            raise ReplicaUnreachable(f"no replica of {service_id} could be reached")
        raise NoCapacity(f"service {service_id} has no ready replica now")

    async def openai_service(self, tenant: Tenant, ref: str) -> str:
        """The id of the tenant's active service ``ref`` (its id, or its name: the newest of
        that name) whose replicas serve OpenAI's API; `NotFound` for any other."""
        async with self.store.session() as s:
            if ref.startswith("svc_"):
                try:
                    found = [await get_service(s, ref, tenant_id=tenant.id)]
                except RecordNotFound:
                    found = []
            else:
                active = await list_services(
                    s, tenant_id=tenant.id, states=[ServiceState.ACTIVE], limit=1000
                )
                found = sorted((x for x in active if x.name == ref), key=lambda x: -x.created_at)
        for service in found[:1]:
            spec = ServiceSpec.model_validate_json(service.spec_json)
            if service.state is ServiceState.ACTIVE and spec.openai:
                return service.id
        raise NotFound(f"no active service {ref} with openai: true")

    def _candidates(self, service_id: str) -> Iterable[Candidate]:
        return (
            Candidate(r.id, r.outstanding, r.served)
            for r in self.replicas.values()
            if r.service_id == service_id and r.health.phase is hs.Phase.READY
        )

    # -- the loop (service_loop.py) ---------------------------------------------------------

    async def run_once(self) -> None:
        await self.loop.run_once()

    async def run(self) -> None:
        await self.loop.run()

    async def close(self) -> None:
        await self.proxy.close()
