"""A tenant's money as the customer API shows it: balance, usage, prices and a job's estimate,
and how an amount is written for a person.

Every amount is in the gateway's ``currency`` (its setting; the lease receipts carry the same
unit) and means something to :data:`MONEY_DECIMALS` decimals: the receipts count micro-units.
The API keeps amounts as JSON numbers, rounded to those decimals where they are sums
(:func:`round_money`); prices per second stay exact, as they can be finer than a micro-unit.
"""

from __future__ import annotations

import math
from datetime import date
from typing import Annotated

from pydantic import BaseModel, Field

#: The unit of balances, prices and costs when a gateway's setting does not name one: what the
#: lease receipts have always carried.
DEFAULT_CURRENCY = "TAO"
CURRENCY_PATTERN = r"^[A-Z][A-Z0-9]{1,15}$"
Currency = Annotated[str, Field(pattern=CURRENCY_PATTERN, description="the unit of every amount")]
#: An amount is kept to micro-units (the receipts' unit), so it is written with 6 decimals.
MONEY_DECIMALS = 6
RATE_DIGITS = 4  # significant digits of a price per second or per hour, written for a person


def round_money(amount: float) -> float:
    """``amount`` to micro-units: sums of floats lose their noise (0.00027000000000000006)."""
    return round(amount, MONEY_DECIMALS) + 0.0  # + 0.0: never -0.0


def format_amount(amount: float, currency: str) -> str:
    """``0.000270 TAO``: an amount with its unit, to micro-units."""
    return f"{round_money(amount):,.{MONEY_DECIMALS}f} {currency}"


def format_rate(per_s: float, currency: str, per: str = "s") -> str:
    """``0.0008 TAO/s``: a price with its unit, to a few significant digits and never in
    scientific notation (``per="h"`` for a price per hour, already multiplied)."""
    return f"{_significant(per_s)} {currency}/{per}"


def _significant(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    decimals = max(0, RATE_DIGITS - 1 - math.floor(math.log10(abs(value))))
    text = f"{value:,.{decimals}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


Amount = Annotated[float, Field(allow_inf_nan=False)]

#: A tenant's ``max_workers`` (and ``max_running_jobs``) unless set: more than a normal user
#: holds, few enough that one tenant cannot take a whole network.
DEFAULT_MAX_WORKERS = 64
#: A tenant's ``max_queued_jobs`` unless set.
DEFAULT_MAX_QUEUED_JOBS = 1000


class Balance(BaseModel):
    """What a tenant has: ``available`` = ``balance`` − ``held`` is what new work may use."""

    balance: Amount = Field(description="the balance after every charge and credit so far")
    held: Amount = Field(
        description="set aside for work that runs: jobs' worst cases, leases' terms, service "
        "replicas' next periods"
    )
    available: Amount = Field(description="what new work may be admitted against")
    currency: Currency
    max_workers: int | None = Field(
        default=None,
        description="the most workers the tenant's leases, jobs and service replicas hold at "
        "once (a lease past it is refused with 429; jobs and replicas past it wait)",
    )
    workers_held: int | None = Field(default=None, description="the workers it holds now")


class UsageItem(BaseModel):
    """One billed item's charges in the window: a job, a lease, or a service (its replicas'
    charges together)."""

    id: str
    kind: str = Field(description="job | lease | service (or the ledger's reason for others)")
    name: str | None = Field(default=None, description="a service's name")
    cost: Amount = Field(description="charged − refunded")
    charged: Amount
    refunded: Amount = 0.0
    entries: int = Field(ge=0, description="ledger rows")
    first_at: float
    last_at: float


class UsageDay(BaseModel):
    """One UTC day's charges, in all and by kind of item."""

    day: date
    cost: Amount = Field(description="charged − refunded")
    charged: Amount
    refunded: Amount = 0.0
    by_kind: dict[str, Amount] = Field(default_factory=dict, description="cost by kind of item")


class Usage(BaseModel):
    """What the ledger adds up to in ``[since, until)`` (epoch seconds)."""

    currency: Currency
    since: float
    until: float
    cost: Amount = Field(description="charged − refunded over the window")
    charged: Amount
    refunded: Amount = 0.0
    items: list[UsageItem] = Field(description="the items last charged first, at most `limit`")
    more_items: bool = Field(default=False, description="`limit` cut the items short")
    days: list[UsageDay] = Field(description="every day with a charge or credit, oldest first")


class GpuPrice(BaseModel):
    """One entry of the GPU price list and the workers on offer that it prices."""

    model: str = Field(description="as the price list names it; a family prices every part")
    price_per_gpu_s: Amount | None = Field(
        description="one GPU for one second; null: such GPUs are on offer but not for sale"
    )
    workers: int = Field(ge=0, description="workers listed with at least one such GPU")
    idle_workers: int = Field(ge=0)
    idle_gpus: int = Field(ge=0, description="such GPUs on idle workers")


class CpuPrice(BaseModel):
    """CPU-only work: each core it asks for, per second (a GPU's price covers its host)."""

    price_per_core_s: Amount
    workers: int = Field(ge=0, description="workers listed that sell CPU time")
    idle_workers: int = Field(ge=0)
    idle_cores: int = Field(ge=0, description="free cores on idle workers")


class Prices(BaseModel):
    """The gateway's price list (what holds and charges are computed from) and what is on
    offer now."""

    currency: Currency
    gpus: list[GpuPrice]
    cpu: CpuPrice


class JobEstimate(BaseModel):
    """What submitting a job would set aside and where it could run now; nothing is created.

    ``hold`` is exactly what the submit holds: ``price_per_s × timeout_s``. A job is charged
    what it ran (at its worker's price) and never more than its hold."""

    currency: Currency
    price_per_s: Amount = Field(
        description="the most it can cost per second: its max_price_per_s, else the dearest "
        "price it could be placed at"
    )
    timeout_s: float
    hold: Amount = Field(description="set aside at submit (0 on a lease: the lease pays)")
    available: Amount = Field(description="the balance not yet held")
    covered: bool = Field(description="`available` covers `hold`: the submit would be admitted")
    workers_now: int = Field(ge=0, description="idle workers on offer that fit it now")
    workers_later: int = Field(
        ge=0, description="workers that fit once free (busy, leased, offline, challenged)"
    )
    cheapest_price_per_s: Amount | None = Field(
        default=None, description="the cheapest worker that fits now, per second"
    )
    refused: dict[str, int] = Field(
        default_factory=dict, description="why the other workers do not fit: filter → workers"
    )
    detail: str | None = Field(default=None, description="why no worker fits now, if none does")


__all__ = [
    "CURRENCY_PATTERN",
    "DEFAULT_CURRENCY",
    "MONEY_DECIMALS",
    "Balance",
    "CpuPrice",
    "Currency",
    "GpuPrice",
    "JobEstimate",
    "Prices",
    "Usage",
    "UsageDay",
    "UsageItem",
    "format_amount",
    "format_rate",
    "round_money",
]
