"""`byteleap services …`: deploy and run inference services on a gateway, through the SDK.

Same gateway and key options as `byteleap jobs` (``commands.customer``); an error prints one
line to stderr and exits 1.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from byteleap.commands.customer import (
    DEFAULT_GATEWAY,
    ApiKeyOption,
    CaBundleOption,
    GatewayOption,
    JsonFlag,
    LimitOption,
    SpecFileOption,
    echo_listing,
    echo_record,
    fail,
    gateway_client,
    read_spec,
)
from byteleap.commands.render import money
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
    echo_record(service, as_json, lambda: _echo_service(service))


def _echo_service(service: ServiceView) -> None:
    typer.echo(
        f"{service.id}  {service.name}  {service.state.value}  revision {service.revision}  "
        f"ready {service.ready_replicas}/{service.desired_replicas}  "
        f"cost {money(service.cost, service.currency)}"
    )
    if service.problem:
        typer.echo(f"  problem: {service.problem}")
    for r in service.replicas:
        if not r.state.is_terminal:
            typer.echo(
                f"  {r.id}  rev {r.revision}  {r.health}  {r.endpoint or '-'}  {r.worker_id}"
            )


def _service_body(
    spec: dict[str, Any],
    name: str | None,
    command: list[str] | None,
    image: str | None,
    env: list[str],
    replicas: tuple[int | None, int | None, float | None],
    health_path: str | None,
) -> dict[str, Any]:
    """The ServiceSpec body: the spec file's, with each option given on top of it."""
    body = dict(spec)
    if name is not None:
        body["name"] = name
    if command:
        body["command"] = command
    if image is not None:
        body["image"] = image
    if env:
        body["env"] = {**body.get("env", {}), **_env(env)}
    min_replicas, max_replicas, target_in_flight = replicas
    autoscale = dict(body.get("autoscale", {}))
    if min_replicas is not None:
        autoscale["min_replicas"] = min_replicas
    if max_replicas is not None:
        autoscale["max_replicas"] = max_replicas
    if min_replicas is not None and max_replicas is None:
        autoscale["max_replicas"] = max(autoscale.get("max_replicas", 1), min_replicas)
    if target_in_flight is not None:
        autoscale["target_in_flight"] = target_in_flight
    if autoscale:
        body["autoscale"] = autoscale
    if health_path is not None:
        body["health"] = {**body.get("health", {}), "path": health_path}
    if "name" not in body or "command" not in body:
        raise fail("error: give the name and the command (after --), or --spec FILE with them")
    return body


@app.command("create")
def create(
    name: Annotated[str | None, typer.Argument(help="The service's name.")] = None,
    command: Annotated[
        list[str] | None, typer.Argument(help="The server's argv; it must serve $PORT.")
    ] = None,
    spec_file: SpecFileOption = None,
    image: Annotated[str | None, typer.Option(help="Run it in this container image.")] = None,
    env: Annotated[list[str], typer.Option(help="KEY=VALUE, repeatable.")] = [],  # noqa: B006
    min_replicas: Annotated[int | None, typer.Option(min=1, help="Default 1.")] = None,
    max_replicas: Annotated[int | None, typer.Option(min=1, help="Default 1.")] = None,
    target_in_flight: Annotated[float | None, typer.Option(help="Requests per replica.")] = None,
    health_path: Annotated[str | None, typer.Option(help="Default /health.")] = None,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Deploy a service and print it (from a full ServiceSpec with --spec, options on top)."""
    replicas = (min_replicas, max_replicas, target_in_flight)
    body = _service_body(read_spec(spec_file), name, command, image, env, replicas, health_path)
    with gateway_client(gateway, api_key, ca_bundle) as client:
        _show(client.create_service(body), as_json)


_LIST_HEADERS = ("ID", "NAME", "STATE", "REVISION", "READY", "COST")


def _service_row(service: ServiceView) -> tuple[str, ...]:
    ready = f"{service.ready_replicas}/{service.desired_replicas}"
    state, revision = service.state.value, str(service.revision)
    return (service.id, service.name, state, revision, ready, money(service.cost, service.currency))


@app.command("list")
def list_services(
    limit: LimitOption = 100,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Your services, newest first."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        services = client.list_services(limit)
    echo_listing(services, as_json, _LIST_HEADERS, _service_row)


@app.command("get")
def get(
    service_id: str,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """A service with its replicas."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
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
    ca_bundle: CaBundleOption = None,
) -> None:
    """New replica bounds or autoscaling targets."""
    given = {
        "min_replicas": min_replicas, "max_replicas": max_replicas,
        "target_in_flight": target_in_flight, "target_latency_ms": target_latency_ms,
    }  # fmt: skip
    with gateway_client(gateway, api_key, ca_bundle) as client:
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
    ca_bundle: CaBundleOption = None,
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
    with gateway_client(gateway, api_key, ca_bundle) as client:
        _show(client.update_service(service_id, body), as_json)


@app.command("delete")
def delete(
    service_id: str,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Drain and stop every replica."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        _show(client.delete_service(service_id), as_json)


@app.command("invoke")
def invoke(
    service_id: str,
    path: Annotated[str, typer.Argument(help="The path on the service, e.g. /v1/models.")] = "/",
    method: Annotated[str, typer.Option("--method", "-X", help="The HTTP method.")] = "GET",
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", help="The request body; @FILE reads a file, @- stdin."),
    ] = None,
    header: Annotated[
        list[str] | None, typer.Option("--header", "-H", help="NAME: VALUE (repeatable).")
    ] = None,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Send one request to the service; its answer prints as it streams (like curl)."""
    body = _request_body(data)
    headers = _headers(header or [])
    with gateway_client(gateway, api_key, ca_bundle) as client:
        for chunk in client.invoke_stream(
            service_id, method.upper(), path, content=body, headers=headers
        ):
            sys.stdout.buffer.write(chunk)
            sys.stdout.flush()


def _request_body(data: str | None) -> bytes | None:
    if data is None or not data.startswith("@"):
        return None if data is None else data.encode()
    source = data[1:]
    try:
        return sys.stdin.buffer.read() if source == "-" else Path(source).read_bytes()
    except OSError as exc:
        raise fail(f"error: cannot read {source}: {exc.strerror}") from None


def _headers(pairs: list[str]) -> dict[str, str]:
    headers = {}
    for pair in pairs:
        name, sep, value = pair.partition(":")
        if not sep or not name.strip():
            raise fail(f"error: --header wants 'NAME: VALUE', not {pair!r}")
        headers[name.strip()] = value.strip()
    return headers


@app.command("logs")
def logs(
    service_id: str,
    replica: Annotated[str | None, typer.Option(help="Only this replica's lines.")] = None,
    after: Annotated[int, typer.Option(min=0, help="Lines numbered from this one on.")] = 0,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """The service's recent replicas' log lines, each line after its replica's id."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        found = client.service_logs(service_id, after=after, replica=replica)
    if as_json:
        typer.echo(found.model_dump_json(indent=2))
        return
    for r in found.replicas:
        for line in r.lines:
            out = sys.stdout if line.stream == "stdout" else sys.stderr
            print(f"{r.replica_id} | {line.line}", file=out)
        if r.more:
            typer.echo(f"{r.replica_id} | … more from --after {r.lines[-1].seq + 1}", err=True)
