"""`byteleap leases forward ID [LOCAL_PORT:]HOST:PORT`: a local port carried to a host and
port as the leased worker sees them (``ssh -L``'s syntax), until Ctrl-C. Each connection is
one exec session through the gateway (see `byteleap.sdk.forward`): no port is opened on the
miner or the worker."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated

import typer

from byteleap.commands.customer import (
    DEFAULT_GATEWAY,
    ApiKeyOption,
    CaBundleOption,
    GatewayOption,
    fail,
    require_key,
    run_customer,
)
from byteleap.sdk import AsyncClient
from byteleap.sdk.forward import forward_port


def parse_forward(spec: str) -> tuple[int, str, int]:
    """``LOCAL:HOST:REMOTE`` or ``HOST:REMOTE`` (the local port is then the remote one), or
    ``LOCAL:REMOTE`` on localhost, as (local port, host, remote port)."""
    parts = spec.split(":")
    try:
        if len(parts) == 3:
            local, host, remote = int(parts[0]), parts[1], int(parts[2])
        elif len(parts) == 2 and parts[0].isdigit():
            local, host, remote = int(parts[0]), "localhost", int(parts[1])
        elif len(parts) == 2:
            host, remote = parts[0], int(parts[1])
            local = remote
        else:
            raise ValueError(spec)
    except ValueError:
        raise ValueError(f"expected LOCAL_PORT:HOST:PORT (like ssh -L), got {spec!r}") from None
    if not host or not all(0 <= p <= 65535 for p in (local, remote)) or remote == 0:
        raise ValueError(f"no such host or port in {spec!r}")
    return local, host, remote


async def _forward(
    gateway: str, api_key: str, lease_id: str, spec: tuple[int, str, int], ca: Path | None
) -> None:
    local, host, remote = spec
    async with AsyncClient(gateway, api_key, ca_bundle=ca) as client:
        await client.get_lease(lease_id)  # a wrong id or key fails here, not per connection
        server = await forward_port(client, lease_id, host, remote, local_port=local)
        bound = server.sockets[0].getsockname()[1]
        typer.echo(
            f"forwarding 127.0.0.1:{bound} -> {host}:{remote} on lease {lease_id}; Ctrl-C stops",
            err=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with server:
            await stop.wait()
        with contextlib.suppress(Exception):
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def forward_command(
    lease_id: str,
    spec: Annotated[str, typer.Argument(help="LOCAL_PORT:HOST:PORT, as ssh -L takes it.")],
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """Forward a local port to HOST:PORT as the lease's worker sees it, until Ctrl-C."""
    require_key(api_key)
    try:
        parsed = parse_forward(spec)
    except ValueError as exc:
        raise fail(f"error: {exc}") from exc
    try:
        run_customer(_forward(gateway, api_key, lease_id, parsed, ca_bundle))
    except OSError as exc:  # the local port is taken
        raise fail(f"error: cannot listen on 127.0.0.1:{parsed[0]}: {exc}") from exc
