"""`byteleap gateway run | tenant new NAME | tenant revoke-key`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from byteleap.commands.common import ConfigOption, settings_for
from byteleap.config import GatewaySettings, load_settings
from byteleap.logs import configure_logging

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


@tenant_app.command("new")
def tenant_new(
    name: Annotated[str, typer.Argument(help="Tenant name (unique).")],
    balance: Annotated[float, typer.Option(min=0, help="Starting balance.")] = 0.0,
    max_workers: Annotated[
        int,
        typer.Option(
            min=0,
            help="The most workers its leases, jobs and service replicas hold at once "
            "(0: none; its work waits).",
        ),
    ] = 64,
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
                store, name, balance=balance, max_workers=max_workers
            )
        finally:
            await store.close()

    typer.echo(asyncio.run(create()))


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
