"""`byteleap gateway run | tenant new NAME | tenant quota NAME | tenant revoke-key`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from byteleap.commands.common import ConfigOption, settings_for
from byteleap.config import GatewaySettings, load_settings
from byteleap.logs import configure_logging
from byteleap.protocol.billing import DEFAULT_MAX_QUEUED_JOBS, DEFAULT_MAX_WORKERS

app = typer.Typer(no_args_is_help=True, add_completion=False)
tenant_app = typer.Typer(no_args_is_help=True, add_completion=False)
app.add_typer(tenant_app, name="tenant", help="Tenants and their API keys.")


@app.command("run")
def run(
    config: ConfigOption = None,
    insecure_public: Annotated[
        bool,
        typer.Option(
            "--insecure-public",
            help="Serve plain HTTP/gRPC on a non-loopback host: only with TLS ending in front "
            "(a reverse proxy). Without it such a host needs tls_cert and tls_key.",
        ),
    ] = False,
) -> None:
    """Serve the customer API (REST, gRPC) and place jobs on miners' workers."""
    from byteleap.gateway.runner import run_gateway

    overrides = {"insecure_public": True} if insecure_public else {}
    settings = load_settings(GatewaySettings, config, **overrides)
    configure_logging(settings.log_level)
    asyncio.run(run_gateway(settings))


_WORKERS_HELP = (
    "The most workers its leases, jobs and service replicas hold at once (0: none; its work waits)."
)
_RUNNING_HELP = "The most of its jobs scheduled or running at once (the rest wait, queued)."
_QUEUED_HELP = "The most of its jobs queued at once (more are refused)."
_NAME = Annotated[str, typer.Argument(help="Tenant name (unique).")]


@tenant_app.command("new")
def tenant_new(
    name: _NAME,
    balance: Annotated[float, typer.Option(min=0, help="Starting balance.")] = 0.0,
    max_workers: Annotated[int, typer.Option(min=0, help=_WORKERS_HELP)] = DEFAULT_MAX_WORKERS,
    max_running_jobs: Annotated[int, typer.Option(min=0, help=_RUNNING_HELP)] = DEFAULT_MAX_WORKERS,
    max_queued_jobs: Annotated[
        int, typer.Option(min=0, help=_QUEUED_HELP)
    ] = DEFAULT_MAX_QUEUED_JOBS,
    config: ConfigOption = None,
) -> None:
    """Create a tenant and print its API key (shown once; stored hashed)."""
    from byteleap.gateway.core import create_tenant_with_key
    from byteleap.store import open_store, upgrade

    settings = settings_for(GatewaySettings, config)

    async def create() -> str:
        await upgrade(settings.store.url)
        store = await open_store(settings.store.url)
        try:
            return await create_tenant_with_key(
                store,
                name,
                balance=balance,
                max_workers=max_workers,
                max_running_jobs=max_running_jobs,
                max_queued_jobs=max_queued_jobs,
            )
        finally:
            await store.close()

    typer.echo(asyncio.run(create()))


@tenant_app.command("quota")
def tenant_quota(
    name: _NAME,
    max_workers: Annotated[int | None, typer.Option(min=0, help=_WORKERS_HELP)] = None,
    max_running_jobs: Annotated[int | None, typer.Option(min=0, help=_RUNNING_HELP)] = None,
    max_queued_jobs: Annotated[int | None, typer.Option(min=0, help=_QUEUED_HELP)] = None,
    config: ConfigOption = None,
) -> None:
    """Show a tenant's quotas and what it holds; with options, change them first. A quota
    lowered below what the tenant holds stops nothing running: new work waits."""
    from byteleap.store import RecordNotFound, open_store, upgrade
    from byteleap.store.cloud import get_tenant
    from byteleap.store.quotas import quota_of, set_quotas

    settings = settings_for(GatewaySettings, config)

    async def change() -> dict[str, int]:
        await upgrade(settings.store.url)  # as `tenant new` does: a store from before the quotas
        store = await open_store(settings.store.url)
        try:
            async with store.session() as s:
                tenant_id = await set_quotas(
                    s,
                    name,
                    max_workers=max_workers,
                    max_running_jobs=max_running_jobs,
                    max_queued_jobs=max_queued_jobs,
                )
                tenant, quota = await get_tenant(s, tenant_id), await quota_of(s, tenant_id)
        finally:
            await store.close()
        return {
            "max_workers": tenant.max_workers,
            "workers_held": quota.workers_held,
            "max_running_jobs": tenant.max_running_jobs,
            "running_jobs": quota.running_jobs,
            "max_queued_jobs": tenant.max_queued_jobs,
        }

    try:
        shown = asyncio.run(change())
    except RecordNotFound:
        typer.echo(f"no tenant named {name!r}", err=True)
        raise typer.Exit(1) from None
    for field, value in shown.items():
        typer.echo(f"{field}: {value}")


@tenant_app.command("revoke-key")
def tenant_revoke_key(
    api_key: Annotated[
        str, typer.Option(envvar="BYTELEAP_API_KEY", prompt=True, hide_input=True, help="The key.")
    ],
    config: ConfigOption = None,
) -> None:
    """Revoke an API key: it is refused from now on and its open streams end within seconds."""
    from byteleap.gateway.core import revoke_key
    from byteleap.store import open_store

    settings = settings_for(GatewaySettings, config)

    async def revoke() -> bool:
        store = await open_store(settings.store.url)
        try:
            return await revoke_key(store, api_key)
        finally:
            await store.close()

    if not asyncio.run(revoke()):
        typer.echo("no such live key", err=True)
        raise typer.Exit(1)
    typer.echo("revoked")
