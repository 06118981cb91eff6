"""`byteleap services …`: deploy and run inference services on a gateway, through the SDK.

Same gateway and key options as `byteleap jobs` (``commands.customer``); an error prints one
line to stderr and exits 1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from byteleap.commands.customer import (
    DEFAULT_GATEWAY,
    ApiKeyOption,
    GatewayOption,
    JsonFlag,
    fail,
    gateway_client,
)
from byteleap.sdk import ServiceView

app = typer.Typer(no_args_is_help=True, add_completion=False)


def _env(pairs: list[str]) -> dict[str, str]:
    env = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise fail(f"error: --env wants KEY=VALUE, not {pair!r}")
        env[key] = value
    return env


def _show(service: ServiceView, as_json: bool) -> None:
    if as_json:
        typer.echo(service.model_dump_json(indent=2))
        return
    typer.echo(
        f"{service.id}  {service.name}  {service.state.value}  revision {service.revision}  "
        f"ready {service.ready_replicas}/{service.desired_replicas}  cost {service.cost:.6f}"
    )
    for r in service.replicas:
        if not r.state.is_terminal:
            typer.echo(
                f"  {r.id}  rev {r.revision}  {r.health}  {r.endpoint or '-'}  {r.worker_id}"
            )


@app.command("create")
def create(
    name: str,
    command: Annotated[list[str], typer.Argument(help="The server's argv; it must serve $PORT.")],
    image: Annotated[str | None, typer.Option(help="Run it in this container image.")] = None,
    env: Annotated[list[str], typer.Option(help="KEY=VALUE, repeatable.")] = [],  # noqa: B006
    min_replicas: Annotated[int, typer.Option(min=1)] = 1,
    max_replicas: Annotated[int, typer.Option(min=1)] = 1,
    target_in_flight: Annotated[float | None, typer.Option(help="Requests per replica.")] = None,
    health_path: str = "/health",
    spec_file: Annotated[Path | None, typer.Option(help="A full ServiceSpec as JSON.")] = None,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """Deploy a service and print it."""
    body: dict[str, Any] = json.loads(spec_file.read_text()) if spec_file else {}
    body.update(name=name, command=command, env={**body.get("env", {}), **_env(env)})
    if image is not None:
        body["image"] = image
    autoscale = {**body.get("autoscale", {}), "min_replicas": min_replicas}
    autoscale["max_replicas"] = max(max_replicas, min_replicas)
    if target_in_flight is not None:
        autoscale["target_in_flight"] = target_in_flight
    body["autoscale"] = autoscale
    body.setdefault("health", {})["path"] = health_path
    with gateway_client(gateway, api_key) as client:
        _show(client.create_service(body), as_json)


@app.command("list")
def list_services(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """Your services, newest first."""
    with gateway_client(gateway, api_key) as client:
        services = client.list_services(limit)
    if as_json:
        typer.echo(json.dumps([s.model_dump(mode="json") for s in services], indent=2))
        return
    for service in services:
        _show(service, False)


@app.command("get")
def get(
    service_id: str,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """A service with its replicas."""
    with gateway_client(gateway, api_key) as client:
        _show(client.get_service(service_id), as_json)


@app.command("scale")
def scale(
    service_id: str,
    min_replicas: Annotated[int | None, typer.Option(min=1)] = None,
    max_replicas: Annotated[int | None, typer.Option(min=1)] = None,
    target_in_flight: Annotated[float | None, typer.Option()] = None,
    target_latency_ms: Annotated[float | None, typer.Option()] = None,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """New replica bounds or autoscaling targets."""
    given = {
        "min_replicas": min_replicas, "max_replicas": max_replicas,
        "target_in_flight": target_in_flight, "target_latency_ms": target_latency_ms,
    }  # fmt: skip
    with gateway_client(gateway, api_key) as client:
        body = {k: v for k, v in given.items() if v is not None}
        _show(client.scale_service(service_id, body), as_json)


@app.command("update")
def update(
    service_id: str,
    image: Annotated[str | None, typer.Option()] = None,
    command: Annotated[list[str] | None, typer.Option(help="Repeat for each argument.")] = None,
    env: Annotated[list[str] | None, typer.Option(help="KEY=VALUE; replaces the env.")] = None,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """Roll the replicas over to a new image, command or env."""
    body: dict[str, Any] = {}
    if image is not None:
        body["image"] = image
    if command:
        body["command"] = command
    if env is not None:
        body["env"] = _env(env)
    if not body:
        raise fail("error: nothing to update (--image, --command or --env)")
    with gateway_client(gateway, api_key) as client:
        _show(client.update_service(service_id, body), as_json)


@app.command("delete")
def delete(
    service_id: str,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
) -> None:
    """Drain and stop every replica."""
    with gateway_client(gateway, api_key) as client:
        _show(client.delete_service(service_id), as_json)
