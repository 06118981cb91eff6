"""The SDK's money methods, blocking and async, against a real gateway (uvicorn on loopback
over the real `GatewayService`, `Billing` and a SQLite store)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from byteleap.protocol.billing import DEFAULT_CURRENCY
from byteleap.sdk import AsyncClient, Balance, Client, InvalidRequest, JobEstimate
from gateway.money_doubles import PRICE
from gateway.money_live import MoneyGateway

SPEC = {"command": ["x"], "timeout_s": 60, "max_price_per_s": PRICE}


@pytest.fixture
def live(tmp_path: Path) -> Iterator[MoneyGateway]:
    with MoneyGateway(tmp_path, balance=2.0) as gateway:
        yield gateway


def test_balance_estimate_usage_and_prices(live: MoneyGateway) -> None:
    with Client(live.url, live.api_key, timeout=10) as client:
        assert client.balance() == Balance(
            balance=2.0,
            held=0.0,
            available=2.0,
            currency=DEFAULT_CURRENCY,
            max_workers=64,
            workers_held=0,
        )
        estimate = client.estimate(SPEC)
        assert isinstance(estimate, JobEstimate)
        assert (estimate.hold, estimate.workers_now) == (pytest.approx(60 * PRICE), 64)
        assert client.list() == []  # a dry run creates nothing
        job = client.submit(SPEC)
        assert client.balance().held == pytest.approx(estimate.hold)
        live.bill_a_job(job.id, ran_s=6.0)
        assert client.get(job.id).cost == pytest.approx(6 * PRICE)
        usage = client.usage(since=time.time() - 3600, until=live.clock.now + 1)
        assert [(i.id, i.kind, i.cost) for i in usage.items] == [(job.id, "job", 6 * PRICE)]
        assert usage.cost == pytest.approx(6 * PRICE) and len(usage.days) == 1
        assert client.balance() == Balance(
            balance=2.0 - 6 * PRICE,
            held=0.0,
            available=2.0 - 6 * PRICE,
            currency="TAO",
            max_workers=64,
            workers_held=0,
        )
        prices = client.prices()
        assert prices.cpu.idle_workers == 64 and prices.currency == DEFAULT_CURRENCY
        with pytest.raises(InvalidRequest) as refused:
            client.usage(since=10.0, until=5.0)
        assert refused.value.field == "since"


async def test_the_async_client_has_the_same_methods(live: MoneyGateway) -> None:
    async with AsyncClient(live.url, live.api_key, timeout=10) as client:
        assert (await client.balance()).available == 2.0
        assert (await client.estimate(SPEC)).covered is True
        assert (await client.usage(limit=5)).items == []
        assert [g.model for g in (await client.prices()).gpus] == ["A100", "H100", "H200"]
