"""`byteleap gateway run | tenant new NAME`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from byteleap.commands.common import ConfigOption, settings_for
from byteleap.config import GatewaySettings
from byteleap.logs import configure_logging

app = typer.Typer(no_args_is_help=True, add_completion=False)
tenant_app = typer.Typer(no_args_is_help=True, add_completion=False)
app.add_typer(tenant_app, name="tenant", help="Tenants and their API keys.")


@app.command("run")
def run(config: ConfigOption = None) -> None:
    """Serve the customer API (REST) and place jobs on miners' workers."""
    from byteleap.cloud.gateway.runner import run_gateway

    settings = settings_for(GatewaySettings, config)
    configure_logging(settings.log_level)
    asyncio.run(run_gateway(settings))


@tenant_app.command("new")
def tenant_new(
    name: Annotated[str, typer.Argument(help="Tenant name (unique).")],
    balance: Annotated[float, typer.Option(min=0, help="Starting balance.")] = 0.0,
    config: ConfigOption = None,
) -> None:
    """Create a tenant and print its API key (shown once; stored hashed)."""
    from byteleap.cloud.gateway.service import create_tenant_with_key
    from byteleap.store import open_store, upgrade

    settings = settings_for(GatewaySettings, config)

    async def create() -> str:
        await upgrade(settings.store.url)
        store = await open_store(settings.store.url)
        try:
            return await create_tenant_with_key(store, name, balance=balance)
        finally:
            await store.close()

    typer.echo(asyncio.run(create()))
