"""A tenant's money as they read it, and what a job would cost before it is submitted.

- `Billing.balance`: the balance, what holds set aside, what is available (``store.money``);
- `Billing.usage`: the ledger's sums over a window, per billed item and per UTC day
  (``store.usage``);
- `Billing.prices`: the gateway's price list (what holds and charges are computed from) and
  how many workers on offer each entry prices;
- `Billing.estimate`: a dry run of a job's submit: the hold it would place (the very
  ``job_requests.worst_case`` the submit holds), and the workers on offer that fit it now
  (the scheduler's ``rank``). Nothing is created and no money moves.

The offers are read from the supply at most every ``offers_ttl_s`` (every miner is asked for
its listing), so customers polling prices cannot make the gateway hammer its miners. The
pure parts (`price_list`, `estimate_of`, `usage_of`) are plain functions over plain data.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from byteleap.config import GatewaySettings
from byteleap.gateway.errors import InvalidSpec
from byteleap.gateway.job_requests import requirements_of, worst_case, worst_price_per_s
from byteleap.gateway.miners import Supply
from byteleap.gateway.port import Tenant
from byteleap.gateway.scheduler import Ranking, WorkerOffer, WorkerState, rank
from byteleap.gateway.scheduler.offers import price_key
from byteleap.protocol.api import JobSpec
from byteleap.protocol.billing import (
    Balance,
    CpuPrice,
    GpuPrice,
    JobEstimate,
    Prices,
    Usage,
    UsageDay,
    UsageItem,
    round_money,
)
from byteleap.protocol.gpu_models import canonical_model
from byteleap.store import Store
from byteleap.store.money import balance_and_held
from byteleap.store.quotas import quota_of
from byteleap.store.usage import DAY_S, DayUsage, ItemUsage, service_names, usage_by_day
from byteleap.store.usage import usage_by_item as items_of

OFFERS_TTL_S = 5.0
DEFAULT_USAGE_WINDOW_S = 30 * DAY_S
MAX_USAGE_WINDOW_S = 366 * DAY_S
# Refusals that end by themselves: the worker fits once it is idle again.
_LATER = frozenset({"offline", "busy", "leased", "challenged"})


@dataclass
class Billing:
    store: Store
    pool: Supply
    settings: GatewaySettings
    clock: Callable[[], float] = time.time
    offers_ttl_s: float = OFFERS_TTL_S
    _offers: tuple[float, list[WorkerOffer]] | None = field(default=None, init=False)
    _reading: asyncio.Lock = field(default_factory=asyncio.Lock, init=False)

    async def balance(self, tenant: Tenant) -> Balance:
        async with self.store.session() as s:
            balance, held = await balance_and_held(s, tenant.id)
            quota = await quota_of(s, tenant.id)
        return Balance(
            balance=round_money(balance),
            held=round_money(held),
            available=round_money(max(0.0, balance - held)),
            currency=self.settings.currency,
            max_workers=quota.max_workers,
            workers_held=quota.workers_held,
        )

    async def usage(
        self, tenant: Tenant, *, since: float | None, until: float | None, limit: int
    ) -> Usage:
        """The ledger in ``[since, until)`` (default: the last 30 days), at most ``limit``
        items; `InvalidSpec` for an empty window or one over 366 days."""
        end = self.clock() if until is None else until
        start = end - DEFAULT_USAGE_WINDOW_S if since is None else since
        if start >= end:
            raise InvalidSpec("since must be before until", field="since")
        if end - start > MAX_USAGE_WINDOW_S:
            raise InvalidSpec("the window is at most 366 days: ask in parts", field="since")
        # Without an end asked for, the query has none: a charge written this second shows.
        async with self.store.session() as s:
            items = await items_of(s, tenant.id, since=start, until=until, limit=limit + 1)
            days = await usage_by_day(s, tenant.id, since=start, until=until)
            services = [i.item_id for i in items if i.kind == "service"]
            names = await service_names(s, tenant.id, services)
        return usage_of(items, days, names, self.settings.currency, start, end, limit)

    async def prices(self) -> Prices:
        return price_list(self.settings, await self._offers_now())

    async def estimate(self, tenant: Tenant, spec: JobSpec) -> JobEstimate:
        """What ``spec``'s submit would hold now and where it could run; creates nothing."""
        async with self.store.session() as s:
            balance, held = await balance_and_held(s, tenant.id)
        available = max(0.0, balance - held)
        if spec.lease_id is not None:
            return JobEstimate(
                currency=self.settings.currency, price_per_s=0.0, timeout_s=spec.timeout_s,
                hold=0.0, available=round_money(available), covered=True, workers_now=0,
                workers_later=0, detail=f"runs on lease {spec.lease_id}, which pays for it",
            )  # fmt: skip
        ranking = rank(requirements_of(spec), await self._offers_now())
        return estimate_of(
            ranking,
            price_per_s=worst_price_per_s(spec, self.settings),
            timeout_s=spec.timeout_s,
            hold=worst_case(spec, self.settings),
            available=available,
            currency=self.settings.currency,
        )

    async def _offers_now(self) -> list[WorkerOffer]:
        async with self._reading:  # one listing at a time; the others wait for its answer
            now = time.monotonic()
            if self._offers is None or now - self._offers[0] >= self.offers_ttl_s:
                self._offers = (now, await self.pool.offers())
            return self._offers[1]


def estimate_of(
    ranking: Ranking,
    *,
    price_per_s: float,
    timeout_s: float,
    hold: float,
    available: float,
    currency: str,
) -> JobEstimate:
    """An estimate from the scheduler's ranking of the offers for the job (pure)."""
    refused: dict[str, int] = {}
    later = 0
    for rejection in ranking.rejections:
        reasons = {r.value for r in rejection.reasons}
        later += reasons <= _LATER
        for reason in reasons:
            refused[reason] = refused.get(reason, 0) + 1
    fits = ranking.placements
    detail = None
    if not fits:
        why = ", ".join(f"{n} {reason}" for reason, n in sorted(refused.items()))
        detail = f"no worker on offer fits it now ({why})" if why else "no workers on offer"
    return JobEstimate(
        currency=currency,
        price_per_s=price_per_s,
        timeout_s=timeout_s,
        hold=round_money(hold),
        available=round_money(available),
        covered=hold <= available,
        workers_now=len(fits),
        workers_later=later,
        cheapest_price_per_s=min((p.price_per_s for p in fits), default=None),
        refused=dict(sorted(refused.items())),
        detail=detail,
    )


def price_list(settings: GatewaySettings, offers: Iterable[WorkerOffer]) -> Prices:
    """The settings' prices with the workers on offer each one prices (pure). A GPU is
    counted under the entry that prices it: its model's, else its family's; GPUs no entry
    prices are listed with no price."""
    table = {price_key(name): (name, price) for name, price in settings.price_per_gpu_s.items()}
    gpus: dict[str, _Tally] = {name: _Tally(price) for name, price in table.values()}
    cpu = _Tally(settings.price_per_cpu_s)
    for offer in offers:
        idle = offer.state is WorkerState.IDLE
        if offer.price_per_cpu_s is not None:
            cpu.count(idle, offer.cpu_cores)
        per_entry: dict[str, int] = {}
        for gpu in offer.gpus:
            name = _entry_of(gpu.model, table)
            per_entry[name] = per_entry.get(name, 0) + 1
        for name, n in per_entry.items():
            gpus.setdefault(name, _Tally(None)).count(idle, n)
    return Prices(
        currency=settings.currency,
        gpus=[
            GpuPrice(
                model=name,
                price_per_gpu_s=t.price,
                workers=t.workers,
                idle_workers=t.idle_workers,
                idle_gpus=t.idle_units,
            )
            for name, t in sorted(gpus.items(), key=lambda kv: (kv[1].price is None, kv[0]))
        ],
        cpu=CpuPrice(
            price_per_core_s=settings.price_per_cpu_s,
            workers=cpu.workers,
            idle_workers=cpu.idle_workers,
            idle_cores=cpu.idle_units,
        ),
    )


@dataclass
class _Tally:
    price: float | None
    workers: int = 0
    idle_workers: int = 0
    idle_units: int = 0

    def count(self, idle: bool, units: int) -> None:
        self.workers += 1
        if idle:
            self.idle_workers += 1
            self.idle_units += units


def _entry_of(model_name: str, table: dict[str, tuple[str, float]]) -> str:
    """The price list's name for the entry that prices ``model_name`` (as ``WorkerOffer``
    looks a price up), else the GPU's own model name."""
    model = canonical_model(model_name)
    if model is None:
        found = table.get(model_name.casefold())
        return found[0] if found else model_name
    for key in (model.name.casefold(), model.family.casefold()):
        if key in table:
            return table[key][0]
    return model.name


def usage_of(
    items: Sequence[ItemUsage],
    days: Sequence[DayUsage],
    names: dict[str, str],
    currency: str,
    since: float,
    until: float,
    limit: int,
) -> Usage:
    """The usage view from the ledger's sums (pure); ``items`` may hold one more than
    ``limit``, which says the list was cut."""
    shown = [
        UsageItem(
            id=i.item_id,
            kind=i.kind,
            name=names.get(i.item_id),
            cost=round_money(i.charged - i.refunded),
            charged=round_money(i.charged),
            refunded=round_money(i.refunded),
            entries=i.entries,
            first_at=i.first_at,
            last_at=i.last_at,
        )
        for i in items[:limit]
    ]
    per_day: dict[int, list[DayUsage]] = {}
    for d in days:
        per_day.setdefault(d.day, []).append(d)
    daily = [_day_view(day, rows) for day, rows in sorted(per_day.items())]
    charged = sum(d.charged for d in days)
    refunded = sum(d.refunded for d in days)
    return Usage(
        currency=currency,
        since=since,
        until=until,
        cost=round_money(charged - refunded),
        charged=round_money(charged),
        refunded=round_money(refunded),
        items=shown,
        more_items=len(items) > limit,
        days=daily,
    )


def _day_view(day: int, rows: list[DayUsage]) -> UsageDay:
    charged = sum(r.charged for r in rows)
    refunded = sum(r.refunded for r in rows)
    by_kind: dict[str, float] = {}
    for r in rows:
        by_kind[r.kind] = by_kind.get(r.kind, 0.0) + r.charged - r.refunded
    return UsageDay(
        day=datetime.fromtimestamp(day * DAY_S, UTC).date(),
        cost=round_money(charged - refunded),
        charged=round_money(charged),
        refunded=round_money(refunded),
        by_kind={k: round_money(v) for k, v in sorted(by_kind.items())},
    )


__all__ = ["Billing", "estimate_of", "price_list", "usage_of"]
