"""The customer side of the devnet: the gateway, a job and a lease through the SDK."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time

import httpx

from byteleap.cloud.gateway.service import create_tenant_with_key
from byteleap.config import GatewaySettings, load_settings
from byteleap.devnet.state import (
    LEASE_RECEIPTS,
    DevnetError,
    DevnetState,
    check_children,
    free_port,
)
from byteleap.devnet.summary import (
    JobSummary,
    LeaseSummary,
)
from byteleap.sdk import AsyncClient
from byteleap.store import open_store

log = logging.getLogger(__name__)


async def step_gateway(state: DevnetState) -> None:
    """Start the gateway (hosted with the validator's key and store) and make a tenant."""
    port = free_port()
    config = state.options.home / "gateway.toml"
    config.write_text(
        f"[gateway]\nport = {port}\ngrpc_port = {free_port()}\n"
        "dispatch_interval_s = 0.2\nmetagraph_refresh_s = 2\n"
        f'bill_period_s = 1\nhome = "{state.options.home.resolve()}"\n'
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
    settings = load_settings(GatewaySettings, config)
    store = await open_store(settings.store.url)
    try:
        state.api_key = await create_tenant_with_key(store, "devnet-customer", balance=100.0)
    finally:
        await store.close()
    state.supervisor.start("gateway", "gateway", "run", "--config", str(config))
    state.gateway_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + state.options.startup_timeout_s
    async with httpx.AsyncClient() as http:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await http.get(f"{state.gateway_url}/v1/health")).status_code == 200:
                    dashboard = f"{state.gateway_url}/dashboard"
                    state.console.print(f"  dashboard: {dashboard}", soft_wrap=True)
                    return
            check_children(state)
            if time.monotonic() > deadline:
                raise DevnetError("the gateway did not start")
            await asyncio.sleep(0.2)


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
    """A customer rents a worker for a short while; each billed second is receipted."""
    async with AsyncClient(state.gateway_url, state.api_key) as client:
        lease = await client.create_lease({"duration_s": 60})
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
    # Weights the validator sets from now on include this lease's revenue.
    state.weights_after = int(time.time()) + 1
