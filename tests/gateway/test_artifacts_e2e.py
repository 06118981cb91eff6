"""Artifacts through a real network: worker → miner → gateway, checked, kept, listed, served."""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from byteleap.config import GatewaySettings
from byteleap.gateway.artifact_vault import ArtifactVault
from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.errors import NotFound
from byteleap.protocol.api import JobSpec, JobState, JobView
from byteleap.store import Store
from gateway.gateway_harness import dispatching, miner_pool, network_settings

pytestmark = pytest.mark.slow

LIMIT = 2 << 20
# Written by the job: a small file, one over a wire chunk (1 MiB) that fits the limit, one
# that does not, and a symlink to a file of the worker's (never listed, never sent).
WRITE = """
import os, random
os.makedirs('artifacts/sub')
open('artifacts/out.txt', 'w').write('hello artifacts\\n')
random.seed(7)
open('artifacts/sub/data.bin', 'wb').write(random.randbytes(1536 * 1024))
open('artifacts/zz_big.bin', 'wb').write(b'x' * (1 << 20))
os.symlink('/etc/hostname', 'artifacts/leak')
print('wrote')
"""


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    return sqlite_store


@pytest.fixture
async def gateway(
    network: Any, workers: dict[str, str], store: Store, tmp_path: Path
) -> AsyncIterator[GatewayService]:
    settings = network_settings(
        network, dispatch_interval_s=0.1, artifacts_dir=tmp_path / "vault",
        max_job_artifact_bytes=LIMIT,
    )  # fmt: skip
    async with miner_pool(network, settings) as pool:
        # Small reads, so one file takes several round trips to the miner.
        vault = ArtifactVault(settings.artifacts_path, LIMIT, read_bytes=256 << 10)
        async with dispatching(GatewayService(store, pool, settings, vault=vault)) as service:
            yield service


async def until_done(service: GatewayService, tenant: Any, job_id: str) -> JobView:
    deadline = time.monotonic() + 60
    while not (view := await service.get_job(tenant, job_id)).state.is_terminal:
        assert time.monotonic() < deadline, view
        await asyncio.sleep(0.1)
    return view


async def read_all(service: GatewayService, tenant: Any, job_id: str, path: str) -> bytes:
    view, chunks = await service.open_artifact(tenant, job_id, path)
    data = b"".join([chunk async for chunk in chunks])
    assert len(data) == view.size and hashlib.sha256(data).hexdigest() == view.sha256
    return data


async def test_artifacts_are_kept_checked_and_served_to_their_tenant_only(
    gateway: GatewayService, tmp_path: Path
) -> None:
    alice = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "alice", balance=10.0)
    )
    bob = await gateway.authenticate(await create_tenant_with_key(gateway.store, "bob", balance=1))
    spec = JobSpec(command=[sys.executable, "-c", WRITE], timeout_s=60)
    job = await until_done(gateway, alice, (await gateway.submit_job(alice, spec)).id)
    assert job.state is JobState.SUCCEEDED, job

    listing = await gateway.list_artifacts(alice, job.id)
    assert [(a.path, a.size) for a in listing.artifacts] == [
        ("out.txt", 16), ("sub/data.bin", 1536 * 1024)
    ]  # fmt: skip
    assert [(r.path, r.reason) for r in listing.rejected] == [
        ("zz_big.bin", f"over the job's artifact limit of {LIMIT} bytes")
    ]
    assert job.error is not None and "zz_big.bin" in job.error
    assert await read_all(gateway, alice, job.id, "out.txt") == b"hello artifacts\n"
    data = await read_all(gateway, alice, job.id, "sub/data.bin")
    assert data == __import__("random").Random(7).randbytes(1536 * 1024)
    # Kept on the gateway's disk by content, not by the job's chosen names.
    kept = sorted(p.name for p in (tmp_path / "vault" / job.id).iterdir())
    assert kept == sorted(a.sha256 for a in listing.artifacts)

    with pytest.raises(NotFound):
        await gateway.list_artifacts(bob, job.id)
    with pytest.raises(NotFound):
        await gateway.open_artifact(bob, job.id, "out.txt")
    with pytest.raises(NotFound):
        await gateway.open_artifact(alice, job.id, "leak")


async def test_a_restarted_gateway_still_serves_the_artifacts(
    gateway: GatewayService, network: Any, tmp_path: Path
) -> None:
    tenant = await gateway.authenticate(
        await create_tenant_with_key(gateway.store, "carol", balance=10.0)
    )
    code = "open('artifacts/result.json', 'w').write('{\"ok\": true}')"
    job = await gateway.submit_job(tenant, JobSpec(command=[sys.executable, "-c", code]))
    assert (await until_done(gateway, tenant, job.id)).state is JobState.SUCCEEDED
    settings = GatewaySettings(chain={"url": network.chain_url}, artifacts_dir=tmp_path / "vault")
    successor = GatewayService(gateway.store, gateway.pool, settings)
    assert [a.path for a in (await successor.list_artifacts(tenant, job.id)).artifacts] == [
        "result.json"
    ]
    assert await read_all(successor, tenant, job.id, "result.json") == b'{"ok": true}'
