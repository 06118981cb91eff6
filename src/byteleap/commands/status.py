"""`byteleap status`: a running network at a glance, from a gateway's public network API.

Reads ``/v1/network/overview`` and ``/v1/network/miners`` (no API key needed) and prints the
chain block, miners, workers, GPUs, the challenge pass rate, jobs, leases and services, and
the miners with the highest weights; ``--json`` prints the same summary as one object.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console, Group
from rich.table import Table

from byteleap.commands.customer import (
    DEFAULT_GATEWAY,
    EXIT_ERROR,
    CaBundleOption,
    GatewayOption,
    JsonFlag,
)
from byteleap.sdk import SdkError
from byteleap.sdk.ca_bundle import tls_context
from byteleap.sdk.gateway_address import gateway_base_url, why_unreachable

TIMEOUT_S = 15.0


def summarise(
    overview: dict[str, Any], miners: dict[str, Any], *, gateway: str, top: int
) -> dict[str, Any]:
    """The status summary from the two API answers (pure)."""
    ranked = sorted(
        miners["miners"], key=lambda m: (-(m["weight"] or 0.0), -m["passed"], m["hotkey"])
    )
    return {
        "gateway": gateway,
        "chain": overview["chain"],
        "miners": overview["miners"],
        "workers": overview["workers"],
        "workers_online": overview["workers_online"],
        "gpus": overview["gpus"],
        "challenges": overview["challenges"],
        "availability": overview["availability"],
        "jobs": overview["jobs"],
        "leases": overview["leases"],
        "services": overview["services"],
        "top_weights": [
            {
                "uid": m["uid"],
                "hotkey": m["hotkey"],
                "weight": m["weight"],
                "workers_online": m["workers_online"],
                "passed": m["passed"],
                "failed": m["failed"],
            }
            for m in ranked[:top]
        ],
    }


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:.1f}%"


def _states(counts: dict[str, int] | None) -> str:
    if counts is None:
        return "not offered"
    return ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "none"


def render(summary: dict[str, Any]) -> Group:
    chain, ch = summary["chain"], summary["challenges"]
    network = Table.grid(padding=(0, 2))
    network.add_column(style="bold")
    network.add_column()
    block = (
        "unreachable" if chain["block"] is None else f"{chain['block']} (netuid {chain['netuid']})"
    )
    rows = [
        ("gateway", summary["gateway"]),
        ("chain block", block),
        ("miners", str(summary["miners"])),
        ("workers", f"{summary['workers_online']} online / {summary['workers']}"),
        ("GPUs", str(summary["gpus"])),
        (
            "challenges",
            f"{ch['passed']} passed, {ch['failed']} failed ({ch['wrong']} wrong) "
            f"in {ch['window_s'] / 60:.0f} min: pass rate {_percent(ch['pass_rate'])}",
        ),
        ("availability", _percent(summary["availability"])),
        ("jobs", _states(summary["jobs"])),
        ("leases", _states(summary["leases"])),
        ("services", _states(summary["services"])),
    ]
    for name, value in rows:
        network.add_row(name, value)
    weights = Table(title="top weights")
    for column in ("uid", "hotkey", "weight", "workers", "passed", "failed"):
        weights.add_column(column)
    for m in summary["top_weights"]:
        weights.add_row(
            "–" if m["uid"] is None else str(m["uid"]),
            m["hotkey"],
            "–" if m["weight"] is None else f"{m['weight']:.4f}",
            str(m["workers_online"]),
            str(m["passed"]),
            str(m["failed"]),
        )
    return Group(network, weights)


def _get(http: httpx.Client, path: str) -> dict[str, Any]:
    response = http.get(path)
    if response.status_code == 404:
        raise typer.BadParameter(
            f"{http.base_url} has no network view ({path}: 404); is it a byteleap gateway?",
            param_hint="--gateway",
        )
    response.raise_for_status()
    return dict(response.json())


def status(
    gateway: GatewayOption = DEFAULT_GATEWAY,
    ca_bundle: CaBundleOption = None,
    as_json: JsonFlag = False,
    top: Annotated[int, typer.Option("--top", min=1, max=256, help="Miners to list.")] = 5,
) -> None:
    """Summarise a running network: chain block, miners, workers, challenges, jobs, weights."""
    try:
        gateway = gateway_base_url(gateway)
        tls = tls_context(ca_bundle)
        with httpx.Client(base_url=gateway, timeout=TIMEOUT_S, verify=tls or True) as http:
            overview = _get(http, "/v1/network/overview")
            miners = _get(http, "/v1/network/miners")
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        typer.echo(
            f"error: gateway {gateway} answered {status} to {exc.request.url.path}", err=True
        )
        raise typer.Exit(EXIT_ERROR) from None
    except httpx.HTTPError as exc:
        typer.echo(
            f"error: cannot reach the gateway at {gateway}: {why_unreachable(exc)}", err=True
        )
        raise typer.Exit(EXIT_ERROR) from None
    except SdkError as exc:  # the address or the CA bundle
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_ERROR) from None
    summary = summarise(overview, miners, gateway=gateway, top=top)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    Console().print(render(summary))
