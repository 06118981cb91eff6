"""`byteleap leases …`: reserve workers on a gateway by the second, through the SDK.

Same gateway and key options as `byteleap jobs` (``commands.customer``); an error prints one
line to stderr and exits 1. A CPU lease shows ``gpu_count: 0`` and its ``cpu_cores``; times
print as ISO 8601 (``--json``: the API's epoch seconds).
"""

from __future__ import annotations

from dataclasses import dataclass
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
    echo_listing,
    echo_record,
    gateway_client,
)
from byteleap.commands.lease_access import exec_command, shell_command
from byteleap.commands.lease_forward import forward_command
from byteleap.commands.lease_ssh import ssh_command, ssh_proxy_command
from byteleap.commands.render import iso, money, one_line, rate
from byteleap.sdk import LeaseView

app = typer.Typer(no_args_is_help=True, add_completion=False)

_SHOWN = ("id", "state", "worker_id", "miner_hotkey", "gpu_model", "gpu_count", "cpu_cores")
_LIST_HEADERS = ("ID", "STATE", "SIZE", "PRICE/S", "COST", "ENDS")


def _lease_body(
    gpus: int,
    gpu_model: str | None,
    cpus: int | None,
    ram: int | None,
    duration: float,
    max_price: float | None,
    vm: VmOptions | None = None,
) -> dict[str, Any]:
    """The LeaseSpec body with only what was given, so the gateway's defaults apply."""
    resources: dict[str, Any] = {"gpu_count": gpus}
    for name, value in (("gpu_model", gpu_model), ("cpu_cores", cpus), ("ram_mib", ram)):
        if value is not None:
            resources[name] = value
    body: dict[str, Any] = {"resources": resources, "duration_s": duration}
    if max_price is not None:
        body["max_price_per_s"] = max_price
    if vm is not None:
        body.update(kind="vm", ssh_public_key=vm.ssh_public_key)
        if vm.vcpus is not None:
            body["vcpus"] = vm.vcpus
        if vm.memory_mib is not None:
            body["memory_mib"] = vm.memory_mib
    return body


@dataclass(frozen=True)
class VmOptions:
    ssh_public_key: str
    vcpus: int | None = None
    memory_mib: int | None = None


def _vm_options(ssh_key: Path | None, vcpus: int | None, memory: int | None) -> VmOptions | None:
    """A VM lease when a key file is given; sizes without a key are a usage error."""
    if ssh_key is None:
        if vcpus is not None or memory is not None:
            raise typer.BadParameter("--vcpus and --memory need --ssh-key (a VM lease)")
        return None
    try:
        key = ssh_key.read_text().strip()
    except OSError as exc:
        raise typer.BadParameter(f"cannot read {ssh_key}: {exc.strerror}") from None
    return VmOptions(ssh_public_key=key, vcpus=vcpus, memory_mib=memory)


@app.command("create")
def create(
    duration: Annotated[float, typer.Option(help="How long, seconds.", show_default=False)],
    gpus: Annotated[int, typer.Option(min=0, help="GPUs (0: a CPU lease).")] = 0,
    gpu_model: Annotated[str | None, typer.Option(help="GPU model, e.g. H100.")] = None,
    cpus: Annotated[int | None, typer.Option(min=1, help="CPU cores.")] = None,
    ram: Annotated[int | None, typer.Option(min=1, help="RAM, MiB.")] = None,
    max_price: Annotated[float | None, typer.Option(help="Most to pay per second.")] = None,
    ssh_key: Annotated[
        Path | None,
        typer.Option(help="A public key file: lease a KVM virtual machine you reach by SSH."),
    ] = None,
    vcpus: Annotated[int | None, typer.Option(min=1, help="VM: virtual CPUs.")] = None,
    memory: Annotated[int | None, typer.Option(min=256, help="VM: memory, MiB.")] = None,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Reserve a worker (or, with --ssh-key, a VM on one) now and print the lease id (with
    --json: the lease)."""
    vm = _vm_options(ssh_key, vcpus, memory)
    body = _lease_body(gpus, gpu_model, cpus, ram, duration, max_price, vm)
    with gateway_client(gateway, api_key, ca_bundle) as client:
        lease = client.create_lease(body)
    echo_record(lease, as_json, lambda: typer.echo(lease.id))


@app.command("status")
def status(
    lease_id: str,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Show a lease: its worker, price, end and cost so far."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        lease = client.get_lease(lease_id)
    echo_record(lease, as_json, lambda: _echo_lease(lease))


def _echo_lease(lease: LeaseView) -> None:
    for key in _SHOWN:
        typer.echo(f"{key}: {_or_none(getattr(lease, key))}")
    typer.echo(f"price_per_s: {rate(lease.price_per_s, lease.currency)}")
    typer.echo(f"cost: {money(lease.cost, lease.currency)}")
    typer.echo(f"receipts: {lease.receipts}")
    typer.echo(f"created_at: {iso(lease.created_at)}")
    typer.echo(f"ends_at: {iso(lease.ends_at)}")
    if lease.ended_at is not None:
        typer.echo(f"ended_at: {iso(lease.ended_at)}")
    if lease.health != "ok":
        why = f" ({one_line(lease.degraded_reason)})" if lease.degraded_reason else ""
        typer.echo(f"health: {lease.health}{why} since {iso(lease.degraded_at)}")
    if lease.access is not None:
        typer.echo(f"access: {one_line(lease.access)}")


def _or_none(value: object) -> object:
    return "-" if value is None else value


@app.command("list")
def list_leases(
    limit: LimitOption = 100,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """List your leases, newest first."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        leases = client.list_leases(limit)
    echo_listing(leases, as_json, _LIST_HEADERS, _lease_row)


def _lease_row(lease: LeaseView) -> tuple[str, ...]:
    price, cost = rate(lease.price_per_s, lease.currency), money(lease.cost, lease.currency)
    return (lease.id, lease.state, _size(lease), price, cost, iso(lease.ends_at))


@app.command("extend")
def extend(
    lease_id: str,
    seconds: Annotated[float, typer.Argument(help="Seconds to add.")],
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Push a lease's end back."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        lease = client.extend_lease(lease_id, seconds)
    echo_record(lease, as_json, lambda: typer.echo(f"{lease.id} ends_at {iso(lease.ends_at)}"))


@app.command("release")
def release(
    lease_id: str,
    as_json: JsonFlag = False,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """End a lease now; billing stops."""
    with gateway_client(gateway, api_key, ca_bundle) as client:
        lease = client.release_lease(lease_id)
    line = f"{lease.id} {lease.state} cost={money(lease.cost, lease.currency)}"
    echo_record(lease, as_json, lambda: typer.echo(line))


def _size(lease: LeaseView) -> str:
    """``2xH100``, or ``4 cores`` for a CPU lease."""
    if lease.gpu_count == 0:
        return f"{lease.cpu_cores} cores"
    return f"{lease.gpu_count}x{lease.gpu_model}"


app.command("exec")(exec_command)
app.command("shell")(shell_command)
app.command("forward")(forward_command)
app.command("ssh")(ssh_command)
app.command("ssh-proxy")(ssh_proxy_command)
