"""A service scaled past its tenant's ``max_workers`` stops at it and its view says why; more
replicas start once the tenant holds fewer workers. The real `ServiceDesk`, loop, `LeaseDesk`
and store; the miner is the readiness tests' double (replicas that run, never ready)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from byteleap.config import GatewaySettings, ServiceSettings
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leasing import LeaseDesk
from byteleap.protocol.api import LeaseSpec
from byteleap.protocol.service_spec import ReplicaState, ServiceSpec
from byteleap.store import open_store, upgrade
from gateway.money_doubles import Clock
from gateway.serving.test_readiness import T0, Desk, OneMiner, UnreadyMiner
from net.receipt_samples import GATEWAY


@pytest.fixture
async def desk(tmp_path: Path) -> AsyncIterator[tuple[Desk, LeaseDesk]]:
    from byteleap.gateway.service_desk import ServiceDesk

    url = f"sqlite+aiosqlite:///{tmp_path / 'store.db'}"
    await upgrade(url)
    store = await open_store(url)
    settings = GatewaySettings(bill_period_s=5, services=ServiceSettings(health_timeout_s=0.5))
    clock, miner = Clock(T0), UnreadyMiner(mode="silent")
    pool = OneMiner(miner)
    leasing = LeaseDesk(
        store, pool, settings, hotkey=GATEWAY, netuid=1, secret=b"s" * 20, bill_period_s=5,
        clock=clock,
    )  # fmt: skip
    services = ServiceDesk(store, pool, settings, leasing=leasing, clock=clock)
    key = await create_tenant_with_key(store, "alice", balance=100.0, max_workers=3)
    tenant = await GatewayService(store, pool, settings).authenticate(key)
    try:
        yield Desk(services, tenant, clock, miner, store), leasing
    finally:
        await services.close()
        await store.close()


def _spec(replicas: int) -> ServiceSpec:
    return ServiceSpec.model_validate(
        {
            "name": "wide",
            "command": ["python", "-m", "http.server"],
            "health": {"path": "/ready", "start_timeout_s": 600},
            "autoscale": {"min_replicas": replicas, "max_replicas": replicas},
        }
    )


@pytest.mark.adversarial
async def test_a_service_past_the_cap_stops_at_it_and_says_why(
    desk: tuple[Desk, LeaseDesk],
) -> None:
    d, leasing = desk
    lease = await leasing.create(d.tenant, LeaseSpec(duration_s=600))  # holds one of three
    service = await d.desk.create(d.tenant, _spec(4))
    await d.passes(3)

    view = await d.desk.get(d.tenant, service.id)
    live = [r for r in view.replicas if r.state is ReplicaState.STARTING]
    assert len(live) == len(view.replicas) == 2  # 1 lease + 2 replicas: the cap of 3
    assert view.desired_replicas == 4
    assert view.problem == (
        "2 of 4 replicas run: no more start while the tenant holds its quota "
        "(at most 3 workers at once; you hold 3)"
    )

    await leasing.release(d.tenant, lease.id)
    await d.passes(1)
    view = await d.desk.get(d.tenant, service.id)
    assert len(view.replicas) == 3  # the freed worker went to the service
    assert view.problem == (
        "3 of 4 replicas run: no more start while the tenant holds its quota "
        "(at most 3 workers at once; you hold 3)"
    )
