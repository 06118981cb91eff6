"""`byteleap leases ssh | ssh-proxy`: the system's ``ssh``, ``scp`` and ``sftp`` into a lease.

``ssh-proxy LEASE_ID`` is an SSH ProxyCommand: it carries its stdin and stdout over one exec
session opened with ``ssh`` (see worker/ssh_access.py), so the worker's in-process SSH server
answers and no port opens anywhere. ``ssh LEASE_ID [-- ARGS]`` runs ``ssh`` with that proxy
and a byteleap-only known_hosts file; the gateway, key and CA bundle reach the proxy through
the environment, never its argv, so the key does not show in ``ps``. Plain OpenSSH use::

    ssh -o ProxyCommand='byteleap leases ssh-proxy %h' LEASE_ID
    scp -o ProxyCommand='byteleap leases ssh-proxy %h' file LEASE_ID:
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import Annotated

import typer

from byteleap.commands.customer import (
    DEFAULT_GATEWAY,
    EXIT_ERROR,
    ApiKeyOption,
    CaBundleOption,
    GatewayOption,
    fail,
    require_key,
    run_customer,
)
from byteleap.commands.lease_access import forward_stdin, print_until_end
from byteleap.sdk import AsyncClient


async def _proxy(gateway: str, api_key: str, lease_id: str, ca_bundle: Path | None) -> int:
    async with AsyncClient(gateway, api_key, ca_bundle=ca_bundle) as client:
        session = await client.open_exec(lease_id, ssh=True)
        async with session:
            sending = asyncio.create_task(forward_stdin(session))
            try:
                frame = await print_until_end(session)
            finally:
                sending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sending
    if frame.exit_code is None:
        typer.echo(f"byteleap: ssh session ended: {frame.reason}", err=True)
        return EXIT_ERROR
    return 0


def ssh_proxy_command(
    lease_id: str,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """An SSH ProxyCommand into the lease: ssh -o ProxyCommand='byteleap leases ssh-proxy %h'."""
    require_key(api_key)
    try:
        code = run_customer(_proxy(gateway, api_key, lease_id, ca_bundle))
    except BrokenPipeError:  # ssh went away first
        code = 0
    raise typer.Exit(code)


def known_hosts_file() -> Path:
    """Byteleap's own known_hosts (each lease has its own host key, named by its id)."""
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "byteleap" / "known_hosts"


def ssh_argv(lease_id: str, args: list[str], known_hosts: Path) -> list[str]:
    """The system ssh's command line into the lease; ``args`` follow the destination (ssh
    reads options there too, then the remote command)."""
    proxy = f"{shlex.quote(sys.executable)} -m byteleap.cli leases ssh-proxy %h"
    return [
        shutil.which("ssh") or "ssh",
        "-o", f"ProxyCommand={proxy}",
        "-o", f"UserKnownHostsFile={shlex.quote(str(known_hosts))}",
        "-o", "StrictHostKeyChecking=accept-new",
        # The miner ends a session idle for 10 minutes: a quiet shell stays open.
        "-o", "ServerAliveInterval=60",
        lease_id, *args,
    ]  # fmt: skip


def ssh_command(
    lease_id: str,
    args: Annotated[
        list[str] | None, typer.Argument(help="ssh options and a command, after --.")
    ] = None,
    gateway: GatewayOption = DEFAULT_GATEWAY,
    api_key: ApiKeyOption = "",
    ca_bundle: CaBundleOption = None,
) -> None:
    """ssh into the lease's worker (the system's ssh, through the gateway; no port opens)."""
    require_key(api_key)
    known = known_hosts_file()
    known.parent.mkdir(parents=True, exist_ok=True)
    # Through the environment: the proxy's argv (and so `ps`) never holds the key.
    env = {**os.environ, "BYTELEAP_GATEWAY_URL": gateway, "BYTELEAP_API_KEY": api_key}
    if ca_bundle is not None:
        env["BYTELEAP_CA_BUNDLE"] = str(ca_bundle)
    argv = ssh_argv(lease_id, args or [], known)
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        raise fail(f"error: cannot run ssh: {exc}") from exc
