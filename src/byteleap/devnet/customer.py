"""The customer side of the devnet: the gateway, a job and a lease through the SDK."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from pathlib import Path

import httpx

from byteleap.config import GatewaySettings, load_settings
from byteleap.devnet.cheaters import wash_leases
from byteleap.devnet.state import (
    LEASE_RECEIPTS,
    DevnetError,
    DevnetState,
    check_children,
    free_port,
    lease_when_free,
)
from byteleap.devnet.summary import (
    JobSummary,
    LeaseSummary,
)
from byteleap.gateway.core import create_tenant_with_key
from byteleap.sdk import AsyncClient
from byteleap.store import open_store

log = logging.getLogger(__name__)

#: How long the customer keeps asking for a lease while every worker is busy.
LEASE_WAIT_S = 30.0


async def step_gateway(state: DevnetState) -> None:
    """Start the gateway (hosted with the validator's key and store), or several replicas of
    it over PostgreSQL, and make a tenant."""
    replicas = [_gateway_config(state, n) for n in range(state.options.gateways)]
    state.gateway_configs = [config for config, _ in replicas]
    settings = load_settings(GatewaySettings, replicas[0][0])
    store = await open_store(settings.store.url)
    try:
        state.api_key = await create_tenant_with_key(store, "devnet-customer", balance=100.0)
    finally:
        await store.close()
    for n, (config, url) in enumerate(replicas):
        state.supervisor.start(_replica(n), "gateway", "run", "--config", str(config))
        state.gateway_urls.append(url)
    state.gateway_url = state.gateway_urls[0]
    deadline = time.monotonic() + state.options.startup_timeout_s
    async with httpx.AsyncClient() as http:
        for url in state.gateway_urls:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/v1/health")).status_code == 200:
                        break
                check_children(state)
                if time.monotonic() > deadline:
                    raise DevnetError(f"the gateway at {url} did not start")
                await asyncio.sleep(0.2)
    state.console.print(f"  dashboard: {state.gateway_url}/dashboard", soft_wrap=True)
    if len(state.gateway_urls) > 1:
        state.console.print(f"  gateway replicas: {', '.join(state.gateway_urls)}", soft_wrap=True)


def _replica(n: int) -> str:
    return "gateway" if n == 0 else f"gateway-{n + 1}"


def _gateway_config(state: DevnetState, n: int) -> tuple[Path, str]:
    """Replica ``n``'s config file (its own port and home) and its URL."""
    port = free_port()
    home = state.options.home.resolve() / ("" if n == 0 else _replica(n))
    config = state.options.home / f"{_replica(n)}.toml"
    config.write_text(
        f"[gateway]\nport = {port}\ngrpc_port = {free_port()}\n"
        "dispatch_interval_s = 0.2\nmetagraph_refresh_s = 2\nleader_ttl_s = 3\n"
        f'bill_period_s = 1\nhome = "{home}"\n'
        # Billing never passes the last good liveness probe: probe every second here.
        "lease_probe_interval_s = 1\nlease_probe_timeout_s = 2\n"
        # The dashboard recomputes scores: with the validator's round interval, not the default.
        f"[gateway.scoring]\nround_interval_s = {state.options.round_interval_s}\n"
        # Services reconcile and average their load fast enough to scale within the run.
        "[gateway.services]\ninterval_s = 0.5\nload_window_s = 2\n"
        f'[gateway.wallet]\nname = "validator"\npath = "{state.wallet_dir.resolve()}"\n'
        f'[gateway.chain]\nurl = "{state.chain_url}"\n'
        f'[gateway.store]\nurl = "{state.store_url}"\n'
    )
    return config, f"http://127.0.0.1:{port}"


async def step_job(state: DevnetState) -> None:
    """A customer submits a job through the SDK, waits for its result and fetches its artifact."""
    code = (
        "import os, platform; os.makedirs('artifacts', exist_ok=True)\n"
        "open('artifacts/hello.txt', 'w').write('made on ' + platform.node())\n"
        "print('hello from', platform.node(), 'on a byteleap worker')"
    )
    async with AsyncClient(state.gateway_url, state.api_key) as client:
        job = await client.submit(
            {"command": [sys.executable, "-c", code], "timeout_s": 60, "retries": 1}
        )
        done = await client.wait(job.id, timeout_s=60, poll_s=0.2)
        artifacts = (
            (await client.artifacts(job.id)).artifacts if done.state.value == "succeeded" else []
        )
    state.summary.jobs.append(JobSummary.of(done, artifacts=len(artifacts)))
    if done.state.value != "succeeded":
        raise DevnetError(f"the sample job ended {done.state.value}: {done.error}")
    if [a.path for a in artifacts] != ["hello.txt"]:
        raise DevnetError(f"the gateway kept {[a.path for a in artifacts]}, not hello.txt")


async def step_lease(state: DevnetState) -> None:
    """A customer rents a worker for a short while; each billed second is receipted. Then each
    wash-lease cheater rents its own worker, as a customer too."""
    async with AsyncClient(state.gateway_url, state.api_key) as client:
        lease = await lease_when_free(state, client, {"duration_s": 60}, wait_s=LEASE_WAIT_S)
        # The lease's access endpoint: a command run on the leased worker through the gateway.
        exec_result = await client.exec(lease.id, ["echo", "ok"])
        deadline = time.monotonic() + 30
        while (await client.get_lease(lease.id)).receipts < LEASE_RECEIPTS:
            check_children(state)
            if time.monotonic() > deadline:
                raise DevnetError("the lease was not billed")
            await asyncio.sleep(0.3)
        done = await client.release_lease(lease.id)
    state.summary.leases.append(
        LeaseSummary(
            id=done.id,
            state=done.state.value,
            receipts=done.receipts,
            amount=round(done.cost, 6),
            exec_ok=exec_result.exit_code == 0 and exec_result.stdout == b"ok\n",
        )
    )
    await wash_leases(state)
    # Weights the validator sets from now on include these leases' revenue.
    state.weights_after = int(time.time()) + 1
