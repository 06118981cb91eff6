"""A service whose replicas never become ready: each replica is given up on at its readiness
deadline and billed no further than it, with a reason its tenant reads; after a few in a row
the revision starts no more (nothing more is billed) and the service view says why, until the
service is updated.

The real `ServiceDesk` and loop, `LeaseDesk` billing with countersigned receipts, and store;
the miner is a double whose replicas report an endpoint nothing listens on (or none, or end),
so every health probe fails for real.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from byteleap.config import GatewaySettings, ServiceSettings
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.port import Tenant
from byteleap.gateway.scheduler import WorkerOffer
from byteleap.gateway.service_desk import ServiceDesk
from byteleap.gateway.serving import health as hs
from byteleap.net.messages import JobRequest, JobStatus, RunState
from byteleap.net.receipts import LeaseReceipt, countersign_as_miner
from byteleap.protocol.service_spec import (
    HealthSpec,
    ReplicaState,
    ServiceSpec,
    ServiceUpdate,
    ServiceView,
)
from byteleap.store import Store, open_store, upgrade
from byteleap.store.money import ledger
from gateway.money_doubles import Clock
from net.receipt_samples import GATEWAY, MINER

T0 = 1_700_000_000.0
TIMEOUT_S = 10.0
PRICE = 0.001  # per core-second


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # nothing listens once it is closed


@dataclass
class UnreadyMiner:
    """Reserves workers and runs replicas that never answer their health path: ``mode``
    "endpoint" reports a port nothing listens on, "silent" no endpoint, "crash" an end."""

    mode: str = "endpoint"
    jobs: dict[str, JobRequest] = field(default_factory=dict)
    port: int = field(default_factory=_closed_port)

    async def start_lease(self, request: Any) -> None:
        return None

    async def extend_lease(self, lease_id: str, ends_at: float) -> None:
        return None

    async def release_lease(self, lease_id: str) -> None:
        return None

    async def submit_job(self, request: JobRequest) -> None:
        self.jobs[request.job_id] = request

    async def cancel_job(self, job_id: str) -> None:
        return None

    async def job_status(self, job_id: str) -> JobStatus:
        request = self.jobs[job_id]
        state = RunState.FAILED if self.mode == "crash" else RunState.RUNNING
        endpoint = f"127.0.0.1:{self.port}" if self.mode == "endpoint" else None
        return JobStatus(
            job_id=job_id, attempt=1, worker_id=request.worker_id, state=state,
            endpoint=endpoint, detail="exit 1" if self.mode == "crash" else "",
        )  # fmt: skip

    async def countersign(self, receipt: LeaseReceipt) -> LeaseReceipt:
        return countersign_as_miner(receipt, MINER)


@dataclass
class OneMiner:
    miner: UnreadyMiner

    async def offers(self) -> list[WorkerOffer]:
        return [
            WorkerOffer(
                miner_hotkey=MINER.ss58_address,
                worker_id=f"w-{i:016x}",
                state="idle",
                cpu_cores=4,
                ram_mib=8192,
                region="local",
                price_per_cpu_s=PRICE,
            )
            for i in range(1, 9)
        ]

    async def client(self, hotkey: str) -> UnreadyMiner:
        return self.miner

    async def close(self) -> None:
        return None


@dataclass
class Desk:
    desk: ServiceDesk
    tenant: Tenant
    clock: Clock
    miner: UnreadyMiner
    store: Store

    async def passes(self, n: int, step_s: float = 1.0) -> None:
        for _ in range(n):
            self.clock.now += step_s
            await self.desk.loop.run_once()

    async def charged(self) -> float:
        async with self.store.session() as s:
            return -sum(r.amount for r in await ledger(s, self.tenant.id, limit=10_000))


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[Desk]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade(url)
    store = await open_store(url)
    settings = GatewaySettings(
        bill_period_s=5, services=ServiceSettings(health_timeout_s=0.5, max_unready_replicas=3)
    )
    clock, miner = Clock(T0), UnreadyMiner()
    pool = OneMiner(miner)
    leasing = LeaseDesk(
        store, pool, settings, hotkey=GATEWAY, netuid=1, secret=b"s" * 20, bill_period_s=5,
        clock=clock,
    )  # fmt: skip
    services = ServiceDesk(store, pool, settings, leasing=leasing, clock=clock)
    key = await create_tenant_with_key(store, "alice", balance=100.0)
    tenant = await GatewayService(store, pool, settings).authenticate(key)
    try:
        yield Desk(services, tenant, clock, miner, store)
    finally:
        await services.close()
        await store.close()


def _spec(replicas: int = 1) -> ServiceSpec:
    return ServiceSpec.model_validate(
        {
            "name": "never-ready",
            "command": ["python", "-m", "http.server"],
            "health": {"path": "/ready", "start_timeout_s": TIMEOUT_S},
            "autoscale": {"min_replicas": replicas, "max_replicas": replicas},
        }
    )


async def _view(d: Desk, service_id: str) -> ServiceView:
    return await d.desk.get(d.tenant, service_id)


async def test_replicas_that_never_become_ready_stop_billing_and_the_service_says_why(
    desk: Desk,
) -> None:
    service = await desk.desk.create(desk.tenant, _spec())
    await desk.passes(60)  # three replicas' deadlines, and long after

    view = await _view(desk, service.id)
    failed = [r for r in view.replicas if r.state is ReplicaState.FAILED]
    assert len(view.replicas) == len(failed) == 3  # no fourth was started
    for r in failed:
        assert r.error == "never ready: GET /ready answered no 2xx within 10 s of its start"
        # Its endpoint came on the pass after its start; the deadline counts from then.
        assert r.billed_until <= r.created_at + 1 + TIMEOUT_S
    assert view.problem is not None
    assert view.problem.startswith("revision 1: its last 3 replicas never became ready")
    assert "nothing more billed" in view.problem and view.ready_replicas == 0
    assert view.currency == "TAO"
    billed = await desk.charged()
    assert billed == pytest.approx(view.cost) and billed > 0

    await desk.passes(30)
    assert await desk.charged() == billed  # stalled: nothing more is billed
    assert len((await _view(desk, service.id)).replicas) == 3

    updated = await desk.desk.update(desk.tenant, service.id, ServiceUpdate(env={"FIX": "1"}))
    assert updated.problem is None  # a new revision gets its own tries
    await desk.passes(1)
    assert len((await _view(desk, service.id)).replicas) == 4


async def test_a_late_pass_bills_no_further_than_the_readiness_deadline(desk: Desk) -> None:
    service = await desk.desk.create(desk.tenant, _spec())
    await desk.passes(2)  # started, then its endpoint: starting from T0 + 2
    await desk.passes(1, step_s=100)  # the gateway was away long past the deadline

    replica = next(r for r in (await _view(desk, service.id)).replicas)
    assert replica.state is ReplicaState.FAILED
    assert replica.billed_until == T0 + 2 + TIMEOUT_S  # not the 100 s it was away
    assert replica.cost == pytest.approx((TIMEOUT_S + 1) * PRICE)


@pytest.mark.parametrize(
    ("mode", "error"),
    [
        ("silent", "never ready: its worker reported no endpoint within 10 s"),
        ("crash", "never ready: it ended before it was ready (failed: exit 1)"),
    ],
)
async def test_replicas_that_report_no_endpoint_or_end_count_as_never_ready(
    desk: Desk, mode: str, error: str
) -> None:
    desk.miner.mode = mode
    service = await desk.desk.create(desk.tenant, _spec(replicas=2))
    await desk.passes(40)
    view = await _view(desk, service.id)
    assert {r.error for r in view.replicas} == {error}
    assert 3 <= len(view.replicas) <= 4  # two at a time: the pair that crossed the third
    assert view.problem is not None and error.removeprefix("never ready: ") in view.problem


SPEC = HealthSpec(path="/h", start_timeout_s=10)


def test_the_deadline_is_the_overdue_moment_of_each_unready_phase() -> None:
    pending = hs.pending(0.0)
    starting = hs.observe_endpoint(pending, 3.0)
    ready = hs.observe_probe(starting, True, 4.0, SPEC)
    assert (hs.deadline(pending, SPEC), hs.deadline(starting, SPEC)) == (10.0, 13.0)
    assert hs.deadline(ready, SPEC) is None and not hs.overdue(ready, 1e9, SPEC)
    assert hs.overdue(starting, 13.0, SPEC) and not hs.overdue(starting, 12.9, SPEC)
    unhealthy = ready.to(hs.Phase.UNHEALTHY, 5.0)
    assert hs.never_ready(starting) and not hs.never_ready(unhealthy)
    assert hs.give_up_reason(unhealthy, SPEC) == "unhealthy for 10 s (GET /h failing)"


@pytest.mark.parametrize(
    ("failures", "ready", "stalled"),
    [
        (["never ready: a", "never ready: b", "never ready: c"], False, True),
        (["never ready: a", "never ready: b", "never ready: c", "lost"], False, True),
        (["never ready: a", "never ready: b"], False, False),  # too few yet
        (["never ready: a", "lost", "never ready: c"], False, False),  # a lost worker breaks it
        (["never ready: a", "never ready: b", None], False, False),
        (["never ready: a", "never ready: b", "never ready: c"], True, False),  # one is ready
    ],
)
def test_a_revision_stalls_after_its_last_replicas_all_failed_never_ready(
    failures: list[str | None], ready: bool, stalled: bool
) -> None:
    reason = hs.stall_reason(2, failures, ready, 3)
    assert (reason is not None) is stalled
    if reason is not None:
        assert reason.startswith("revision 2: its last 3 replicas never became ready (the last: a)")
