"""`byteleap balance`, `byteleap usage`, `byteleap prices`: a tenant's money on a gateway, and
the estimate `byteleap jobs submit --dry-run` prints.

Every amount is printed with the gateway's currency, to micro-units (``0.000270 TAO``), and
prices to a few significant digits per second and per hour; ``--json`` prints the gateway's
answer as it came (numbers, with its ``currency``). Same gateway and key options as
`byteleap jobs` (``commands.customer``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from byteleap.commands.customer import (
    DEFAULT_GATEWAY,
    ApiKeyOption,
    CaBundleOption,
    GatewayOption,
    JsonFlag,
    LimitOption,
    fail,
    gateway_client,
)
from byteleap.protocol.billing import (
    DEFAULT_CURRENCY,
    JobEstimate,
    Prices,
    Usage,
    format_amount,
    format_rate,
)

DAY_S = 86_400
DateOption = Annotated[
    datetime | None,
    typer.Option(
        formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"],
        help="A date or time (UTC unless it says otherwise).",
        show_default=False,
    ),
]


def _console() -> Console:
    # Wide enough that ids are never folded when the output is not a terminal (a pipe, a test).
    return Console(width=None if Console().is_terminal else 160)


def balance(
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Show your balance, what running work holds of it, and what new work may use."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        money = client.balance()
    if as_json:
        typer.echo(money.model_dump_json(indent=2))
        return
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("balance", format_amount(money.balance, money.currency))
    table.add_row("held", format_amount(money.held, money.currency))
    table.add_row("available", format_amount(money.available, money.currency))
    _console().print(table)


def usage(
    since: DateOption = None,
    until: DateOption = None,
    days: Annotated[
        int | None,
        typer.Option(
            min=1, max=366, help="The last N days (instead of --since).", show_default=False
        ),
    ] = None,
    limit: LimitOption = 100,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Show what you were charged, per job, lease and service and per day (default: the last
    30 days)."""
    if days is not None and since is not None:
        raise fail("error: give --since or --days, not both")
    end = _epoch(until)
    start = _epoch(since)
    if days is not None:
        start = (end if end is not None else datetime.now(UTC).timestamp()) - days * DAY_S
    with gateway_client(gateway, api_key, ca_bundle) as client:
        report = client.usage(since=start, until=end, limit=limit)
    if as_json:
        typer.echo(report.model_dump_json(indent=2))
        return
    _console().print(*render_usage(report))


def render_usage(report: Usage) -> list[Table | str]:
    unit = report.currency
    window = f"{_when(report.since)} – {_when(report.until)}"
    total = f"total {format_amount(report.cost, unit)} ({window})"
    if report.refunded:
        total += f", after {format_amount(report.refunded, unit)} refunded"
    items = Table(title="by item", title_justify="left")
    for column in ("id", "kind", "name", "cost", "charges", "last charged"):
        items.add_column(column, justify="right" if column in ("cost", "charges") else "left")
    for item in report.items:
        items.add_row(
            item.id,
            item.kind,
            item.name or "",
            format_amount(item.cost, unit),
            str(item.entries),
            _when(item.last_at),
        )
    kinds = sorted({k for d in report.days for k in d.by_kind})
    per_day = Table(title="by day (UTC)", title_justify="left")
    per_day.add_column("day")
    per_day.add_column("cost", justify="right")
    for kind in kinds:
        per_day.add_column(kind, justify="right")
    for day in report.days:
        shares = [format_amount(day.by_kind.get(k, 0.0), unit) for k in kinds]
        per_day.add_row(day.day.isoformat(), format_amount(day.cost, unit), *shares)
    shown: list[Table | str] = [total, items]
    if report.more_items:
        shown.append(f"(the {len(report.items)} items last charged; --limit shows more)")
    shown.append(per_day)
    return shown


def prices(
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Show the price per GPU model and per CPU core, and the workers on offer for each."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        listing = client.prices()
    if as_json:
        typer.echo(listing.model_dump_json(indent=2))
        return
    _console().print(render_prices(listing))


def render_prices(listing: Prices) -> Table:
    unit = listing.currency
    table = Table(title=f"prices ({unit})", title_justify="left")
    for column in ("for", "per second", "per hour", "workers", "idle", "idle units"):
        table.add_column(column, justify="left" if column == "for" else "right")
    for gpu in listing.gpus:
        price = gpu.price_per_gpu_s
        table.add_row(
            f"1 × {gpu.model} GPU",
            "not for sale" if price is None else format_rate(price, unit),
            "" if price is None else format_rate(price * 3600, unit, "h"),
            str(gpu.workers),
            str(gpu.idle_workers),
            f"{gpu.idle_gpus} GPUs",
        )
    cpu = listing.cpu
    table.add_row(
        "1 CPU core (CPU-only work)",
        format_rate(cpu.price_per_core_s, unit),
        format_rate(cpu.price_per_core_s * 3600, unit, "h"),
        str(cpu.workers),
        str(cpu.idle_workers),
        f"{cpu.idle_cores} cores",
    )
    return table


def print_estimate(estimate: JobEstimate) -> None:
    """What `jobs submit --dry-run` prints: the hold, the price and the workers that fit."""
    unit = estimate.currency
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    hold = format_amount(estimate.hold, unit)
    if estimate.price_per_s:
        at = format_rate(estimate.price_per_s, unit)
        hold += f"  (at most {at} × {estimate.timeout_s:g} s)"
    table.add_row("would hold", hold)
    covered = "covers it" if estimate.covered else "does NOT cover it: the submit would get 402"
    table.add_row("available", f"{format_amount(estimate.available, unit)}  ({covered})")
    fits = f"{estimate.workers_now} now, {estimate.workers_later} more once free"
    if estimate.cheapest_price_per_s is not None:
        fits += f"; the cheapest now costs {format_rate(estimate.cheapest_price_per_s, unit)}"
    table.add_row("workers that fit", fits)
    if estimate.detail:
        table.add_row("", estimate.detail)
    _console().print(table)
    typer.echo("dry run: nothing was submitted", err=True)


def field_text(record: BaseModel, key: str) -> str:
    """A record's field as the CLI prints it: a cost or a price with the record's unit."""
    value = getattr(record, key)
    currency = str(getattr(record, "currency", DEFAULT_CURRENCY))
    if isinstance(value, float) and key == "cost":
        return format_amount(value, currency)
    if isinstance(value, float) and key.startswith("price_per_s"):
        return format_rate(value, currency)
    return str(value)


def _epoch(moment: datetime | None) -> float | None:
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M")
