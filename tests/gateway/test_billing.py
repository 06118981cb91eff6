"""Money you can read, over REST on the real `GatewayService`, `Billing` and store (SQLite and
PostgreSQL): the balance and its holds, usage per item and per day from the ledger that real
billing wrote, the price list with the workers on offer, and a job's dry run holding exactly
what its submit then holds. The miners are the doubles of ``money_doubles``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from byteleap.config import GatewaySettings
from byteleap.gateway.billing import Billing, estimate_of, price_list
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.rest import create_rest_app
from byteleap.gateway.rest_billing import mount_billing
from byteleap.gateway.scheduler import GpuSpec, WorkerOffer, rank
from byteleap.gateway.scheduler.offers import Requirements
from byteleap.protocol.billing import DEFAULT_CURRENCY
from byteleap.protocol.service_spec import ReplicaState, ServiceState
from byteleap.store import Store
from byteleap.store.money import charge, credit, held_for, hold
from byteleap.store.services import ReplicaRecord, ServiceRecord, insert_replica, insert_service
from gateway.money_doubles import PRICE, T0, Clock, CpuSupply

DAY = 86_400.0


def _offer(n: int, state: str = "idle", gpus: tuple[str, ...] = (), cores: int = 8) -> Any:
    return WorkerOffer(
        miner_hotkey="miner-b", worker_id=f"w-{n:016x}", state=state,
        gpus=tuple(GpuSpec(model=m, vram_mib=81559) for m in gpus), cpu_cores=cores,
        ram_mib=65536, region="local", price_per_gpu_s={"H100": 0.0008, "H200": 0.0011},
        price_per_cpu_s=0.00001,
    )  # fmt: skip


@dataclass
class Gw:
    gateway: GatewayService
    supply: CpuSupply
    clock: Clock
    api: httpx.AsyncClient
    tenant_id: int
    key: str

    async def get(self, path: str, **params: Any) -> Any:
        response = await self.api.get(path, params=params, headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()

    async def post(self, path: str, body: Any, status: int = 200) -> Any:
        response = await self.api.post(path, json=body, headers=self.auth)
        assert response.status_code == status, response.text
        return response.json()

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


async def _gw(
    store: Store, balance: float, settings: GatewaySettings | None = None, **supply: Any
) -> AsyncIterator[Gw]:
    settings = settings or GatewaySettings()
    clock, pool = Clock(), CpuSupply(**supply)
    gateway = GatewayService(store, pool, settings, clock=clock)
    app = create_rest_app(gateway)
    mount_billing(app, Billing(store, pool, settings, clock=clock))
    key = await create_tenant_with_key(store, "alice", balance=balance)
    tenant = await gateway.authenticate(key)
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
        yield Gw(gateway, pool, clock, api, tenant.id, key)


@pytest.fixture
async def gw(store: Store) -> AsyncIterator[Gw]:
    async for g in _gw(store, balance=10.0, more=[_offer(1, gpus=("H100 SXM",))]):
        yield g


@pytest.mark.parametrize(
    "path", ["/v1/balance", "/v1/usage", "/v1/prices", "/v1/jobs/estimate"], ids=str
)
async def test_every_money_route_needs_a_key(gw: Gw, path: str) -> None:
    method = "POST" if path.endswith("estimate") else "GET"
    response = await gw.api.request(method, path, json={"command": ["x"]})
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"


async def test_the_balance_shows_what_a_submit_holds(gw: Gw) -> None:
    assert await gw.get("/v1/balance") == {
        "balance": 10.0, "held": 0.0, "available": 10.0, "currency": DEFAULT_CURRENCY,
        "max_workers": 64, "workers_held": 0,
    }  # fmt: skip
    await gw.post("/v1/jobs", {"command": ["x"], "timeout_s": 100, "max_price_per_s": 0.003}, 201)
    shown = await gw.get("/v1/balance")
    assert (shown["balance"], shown["held"], shown["available"]) == (10.0, 0.3, 9.7)


@pytest.mark.parametrize(
    "spec",
    [
        {"command": ["x"], "timeout_s": 100, "max_price_per_s": 0.0007},  # its own cap
        {"command": ["x"], "timeout_s": 3600, "resources": {"cpu_cores": 4}},  # the core price
        {"command": ["x"], "timeout_s": 60, "resources": {"gpu_count": 2, "gpu_model": "H200"}},
        {"command": ["x"], "timeout_s": 60, "resources": {"gpu_count": 1}},  # the dearest GPU
    ],
    ids=["max-price", "cpu", "h200", "any-gpu"],
)
async def test_the_dry_run_holds_what_the_submit_then_holds(gw: Gw, spec: dict[str, Any]) -> None:
    estimate = await gw.post("/v1/jobs/estimate", spec)
    assert await gw.get("/v1/jobs") == []  # nothing was created
    assert (await gw.get("/v1/balance"))["held"] == 0.0
    assert estimate["hold"] == pytest.approx(estimate["price_per_s"] * spec["timeout_s"])
    assert estimate["covered"] is True and estimate["currency"] == DEFAULT_CURRENCY

    job = await gw.post("/v1/jobs", spec, 201)

    async with gw.gateway.store.session() as s:
        assert await held_for(s, job["id"]) == pytest.approx(estimate["hold"], abs=1e-6)
    assert (await gw.get("/v1/balance"))["held"] == pytest.approx(estimate["hold"], abs=1e-6)


async def test_the_dry_run_counts_the_workers_that_fit_now_and_later(store: Store) -> None:
    busy = [_offer(i, "busy", ("H100 SXM",)) for i in range(2)]
    idle = [_offer(2, gpus=("H100 SXM", "H100 SXM")), _offer(3, gpus=("H200",))]
    async for gw in _gw(store, balance=0.05, workers=3, more=busy + idle):
        h100 = {"gpu_count": 1, "gpu_model": "H100"}
        one_h100 = {"command": ["x"], "timeout_s": 60, "resources": h100}
        estimate = await gw.post("/v1/jobs/estimate", one_h100)
        assert (estimate["workers_now"], estimate["workers_later"]) == (1, 2)
        assert estimate["cheapest_price_per_s"] == pytest.approx(0.0008)
        assert estimate["refused"]["busy"] == 2 and estimate["refused"]["too_few_gpus"] == 3
        assert estimate["hold"] == pytest.approx(0.0008 * 60)
        assert estimate["covered"] is True and estimate["detail"] is None

        eight = {"command": ["x"], "timeout_s": 600, "resources": {"gpu_count": 8}}
        none_fit = await gw.post("/v1/jobs/estimate", eight)
        assert (none_fit["workers_now"], none_fit["workers_later"]) == (0, 0)
        assert "no worker on offer fits it now" in none_fit["detail"]
        assert none_fit["covered"] is False  # 8 × the dearest GPU × 600 s is over 0.05
        refused = await gw.api.post("/v1/jobs", json=eight, headers=gw.auth)
        assert refused.status_code == 402  # as the dry run said
        assert f"(0.050000 {DEFAULT_CURRENCY})" in refused.json()["detail"]


async def test_usage_sums_the_ledger_per_item_and_per_utc_day(store: Store) -> None:
    """A job billed by the real dispatcher, a lease, a service's two replicas and a refund,
    over two days; the window, the limit and the day boundaries hold."""
    async for gw in _gw(store, balance=10.0):
        await _check_usage(gw)


async def _check_usage(gw: Gw) -> None:
    job = await gw.post(
        "/v1/jobs", {"command": ["x"], "timeout_s": 60, "max_price_per_s": PRICE}, 201
    )
    await gw.gateway.dispatcher.dispatch_once()
    gw.supply.miner.ended[f"{job['id']}-a1"] = 6.0
    gw.clock.now = T0 + 10
    await gw.gateway.dispatcher.monitor_once()
    day0 = T0 - T0 % DAY  # the job's charge lands on T0's UTC day
    async with gw.gateway.store.session() as s:
        await insert_service(s, _service(gw.tenant_id))
        for rep in ("rep_a", "rep_b"):
            await insert_replica(s, _replica(rep, day0 + DAY))
            await hold(s, gw.tenant_id, rep, 0.5, at=day0 + DAY)
            await charge(s, gw.tenant_id, 0.25, reason="service", job_id=rep, at=day0 + DAY + 60)
        await hold(s, gw.tenant_id, "lease_x", 1.0, at=day0 + 100)
        await charge(s, gw.tenant_id, 0.1, reason="lease", job_id="lease_x", at=day0 + DAY - 1)
        await charge(s, gw.tenant_id, 0.2, reason="lease", job_id="lease_x", at=day0 + DAY + 5)
        refund = {"reason": "validation_refund", "job_id": job["id"], "at": T0 + 20}
        await credit(s, gw.tenant_id, 0.002, **refund)

    usage = await gw.get("/v1/usage", since=day0, until=day0 + 2 * DAY)

    items = {i["id"]: i for i in usage["items"]}
    assert set(items) == {job["id"], "lease_x", "svc_1"}
    assert items["svc_1"] | {"first_at": 0, "last_at": 0} == {
        "id": "svc_1", "kind": "service", "name": "web", "cost": 0.5, "charged": 0.5,
        "refunded": 0.0, "entries": 2, "first_at": 0, "last_at": 0,
    }  # fmt: skip
    assert (items[job["id"]]["kind"], items[job["id"]]["charged"]) == ("job", 6 * PRICE)
    assert items[job["id"]]["cost"] == pytest.approx(6 * PRICE - 0.002)
    assert (items["lease_x"]["cost"], items["lease_x"]["entries"]) == (0.3, 2)
    assert usage["items"][0]["id"] == "svc_1"  # the last charged first
    first, second = usage["days"]
    assert first["day"] == datetime.fromtimestamp(day0, UTC).date().isoformat()
    assert first["by_kind"] == {"job": pytest.approx(6 * PRICE - 0.002), "lease": 0.1}
    assert second["by_kind"] == {"lease": 0.2, "service": 0.5}
    assert usage["cost"] == pytest.approx(0.8 + 6 * PRICE - 0.002)
    assert usage["refunded"] == 0.002 and usage["currency"] == DEFAULT_CURRENCY

    cut = await gw.get("/v1/usage", since=day0, until=day0 + 2 * DAY, limit=1)
    assert [i["id"] for i in cut["items"]] == ["svc_1"] and cut["more_items"] is True
    later = await gw.get("/v1/usage", since=day0 + DAY, until=day0 + 2 * DAY)
    assert {i["id"] for i in later["items"]} == {"lease_x", "svc_1"}
    assert later["cost"] == pytest.approx(0.7)


async def test_usage_defaults_to_the_last_30_days_and_refuses_a_bad_window(gw: Gw) -> None:
    gw.clock.now = T0
    usage = await gw.get("/v1/usage")
    assert (usage["since"], usage["until"]) == (T0 - 30 * DAY, T0)
    assert (usage["items"], usage["days"], usage["cost"]) == ([], [], 0.0)
    for params in ({"since": T0, "until": T0}, {"since": T0 - 400 * DAY, "until": T0}):
        response = await gw.api.get("/v1/usage", params=params, headers=gw.auth)
        assert response.status_code == 422 and response.json()["field"] == "since"


async def test_prices_list_the_settings_with_the_workers_on_offer(store: Store) -> None:
    offers = [
        _offer(1, gpus=("NVIDIA H100 80GB HBM3",) * 2),
        _offer(2, "busy", ("H100 PCIe",)),
        _offer(3, gpus=("Some Unknown GPU",)),
    ]
    async for gw in _gw(store, balance=1.0, workers=2, more=offers):
        prices = await gw.get("/v1/prices")
    gpus = {g["model"]: g for g in prices["gpus"]}
    assert prices["currency"] == DEFAULT_CURRENCY
    settings = GatewaySettings()
    for name, price in settings.price_per_gpu_s.items():
        assert gpus[name]["price_per_gpu_s"] == price
    assert gpus["H100"] | {"model": ""} == {
        "model": "", "price_per_gpu_s": 0.0008, "workers": 2, "idle_workers": 1, "idle_gpus": 2,
    }  # fmt: skip
    assert (gpus["A100"]["workers"], gpus["Some Unknown GPU"]["price_per_gpu_s"]) == (0, None)
    assert prices["gpus"][-1]["model"] == "Some Unknown GPU"  # the unpriced last
    assert prices["cpu"] == {
        "price_per_core_s": settings.price_per_cpu_s, "workers": 5, "idle_workers": 4,
        "idle_cores": 2 + 8 * 2,
    }  # fmt: skip


async def test_a_currency_setting_names_every_amount(store: Store) -> None:
    settings = GatewaySettings(currency="USD")
    async for gw in _gw(store, balance=0.01, settings=settings):
        job = await gw.post("/v1/jobs", {"command": ["x"], "timeout_s": 10}, 201)
        assert job["currency"] == "USD"
        assert (await gw.get("/v1/balance"))["currency"] == "USD"
        assert (await gw.get("/v1/prices"))["currency"] == "USD"
        assert (await gw.get("/v1/usage"))["currency"] == "USD"
        big = {"command": ["x"], "timeout_s": 86400, "resources": {"gpu_count": 1}}
        assert (await gw.post("/v1/jobs/estimate", big))["currency"] == "USD"
        refused = await gw.api.post("/v1/jobs", json=big, headers=gw.auth)
        assert refused.status_code == 402
        assert "(0.009900 USD)" in refused.json()["detail"]  # what is not held, with its unit


def test_a_currency_outside_the_receipts_grammar_is_refused() -> None:
    with pytest.raises(ValueError, match="currency"):
        GatewaySettings(currency="credit")


def test_the_price_list_counts_each_gpu_under_the_entry_that_prices_it() -> None:
    settings = GatewaySettings(price_per_gpu_s={"H100": 0.001, "H100 PCIe": 0.0006})
    prices = price_list(
        settings, [_offer(1, gpus=("H100 PCIe", "H100 SXM")), _offer(2, gpus=("H100 SXM",))]
    )
    by_model = {g.model: (g.workers, g.idle_gpus) for g in prices.gpus}
    assert by_model == {"H100": (2, 2), "H100 PCIe": (1, 1)}


def test_an_estimate_without_offers_says_so() -> None:
    ranking = rank(Requirements(gpu_count=1), [])
    estimate = estimate_of(
        ranking, price_per_s=0.001, timeout_s=10, hold=0.01, available=0.0, currency="TAO"
    )
    assert (estimate.workers_now, estimate.covered, estimate.detail) == (
        0, False, "no workers on offer",
    )  # fmt: skip


def _service(tenant_id: int) -> ServiceRecord:
    return ServiceRecord(
        id="svc_1", tenant_id=tenant_id, name="web", state=ServiceState.ACTIVE, spec_json="{}",
        revision=1, desired=2, created_at=T0, updated_at=T0,
    )  # fmt: skip


def _replica(replica_id: str, at: float) -> ReplicaRecord:
    return ReplicaRecord(
        id=replica_id, service_id="svc_1", revision=1, state=ReplicaState.STARTING,
        worker_id="w-0000000000000001", miner_hotkey="miner-a", endpoint=None, gpu_model="cpu",
        gpu_count=1, price_per_s=0.5, unit_price_micro=500_000, created_at=at, ended_at=None,
        billed_until=at, cost=0.0, receipts=0, error=None,
    )  # fmt: skip
