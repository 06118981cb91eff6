"""VM leases end to end: the gateway's REST API and lease desk in this process, a real chain,
miner and workers as processes. One worker hosts VMs through libvirt's ``test:///default``
driver (domains live inside that worker's process, so their state is read through the miner's
lease status, which carries the worker's libvirt reports) with real qcow2 and seed disks.

Checked: a vm lease without a key, or with a key carrying a newline, is a 422 naming
``ssh_public_key``; with only a worker that hosts no VMs it is the usual no-capacity answer;
with the VM host it defines and starts the domain, shows ``ssh <user>@<address>``, and its
release destroys and undefines the domain and deletes its disks.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from byteleap.gateway.core import GatewayService, create_tenant_with_key
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.rest import create_rest_app
from byteleap.net.messages import LeaseStatus, WorkerState
from byteleap.net.miner_client import MinerClient
from byteleap.store import Store, open_store, upgrade
from gateway.gateway_harness import lease_desk, miner_pool, network_settings
from network_fixtures import miner_neuron, wait_for_workers
from worker.vm.vm_fixtures import ed25519_key, missing, need_tools

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", autouse=True)
def _vm_tools() -> None:
    if importlib.util.find_spec("libvirt") is None:
        missing("libvirt-python is not installed (pip install -e '.[vm]')")
    need_tools("qemu-img", "genisoimage")


@dataclass
class Gateway:
    api: httpx.AsyncClient
    desk: LeaseDesk
    headers: dict[str, str]


@pytest.fixture
async def gateway(network: Any, tmp_path: Path) -> AsyncIterator[Gateway]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await upgrade(url)
    store: Store = await open_store(url)
    settings = network_settings(network, metagraph_refresh_s=0.5)
    try:
        async with miner_pool(network, settings) as pool:
            desk = lease_desk(network, store, pool, settings, bill_period_s=1.0)
            service = GatewayService(store, pool, settings, leasing=desk)
            key = await create_tenant_with_key(store, "renter", balance=5.0)
            transport = httpx.ASGITransport(create_rest_app(service))
            async with httpx.AsyncClient(transport=transport, base_url="http://gw") as api:
                yield Gateway(api, desk, {"Authorization": f"Bearer {key}"})
    finally:
        await store.close()


def worker_id(network: Any, name: str) -> str:
    identity = json.loads((network.root / name / "worker_identity.json").read_text())
    return str(identity["worker_id"])


async def idle_workers(network: Any, count: int) -> None:
    async with MinerClient(network.validator, await miner_neuron(network)) as client:
        await wait_for_workers(client, count, WorkerState.IDLE)


async def eventually(check: Callable[[], Awaitable[Any]], what: str, timeout_s: float = 30) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = await check()
        if value:
            return value
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


def vm_lease(**fields: Any) -> dict[str, Any]:
    body = {"kind": "vm", "duration_s": 60, "vcpus": 1, "memory_mib": 512}
    return body | {"ssh_public_key": ed25519_key()} | fields


async def test_vm_leases_are_refused_without_a_good_key_or_a_vm_host(
    gateway: Gateway, network: Any
) -> None:
    network.start_worker("plain", network.new_token())
    await idle_workers(network, 1)
    api, headers = gateway.api, gateway.headers

    for body in (
        {"kind": "vm", "duration_s": 60},  # no key
        vm_lease(ssh_public_key=ed25519_key() + "\nssh-ed25519 AAAA evil"),
        vm_lease(ssh_public_key="ssh-ed25519 not-base64!"),
        {"duration_s": 60, "ssh_public_key": ed25519_key()},  # a key, but no VM
    ):
        answer = await api.post("/v1/leases", json=body, headers=headers)
        assert answer.status_code == 422, answer.text
        assert answer.json()["field"] == "ssh_public_key", answer.text

    answer = await api.post("/v1/leases", json=vm_lease(), headers=headers)
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"] == "no_capacity" and "no_vm" in answer.json()["detail"]
    # the same lease as an ordinary one fits the worker that is there
    plain = await api.post("/v1/leases", json={"duration_s": 60}, headers=headers)
    assert plain.status_code == 201, plain.text
    release = await api.post(f"/v1/leases/{plain.json()['id']}/release", headers=headers)
    assert release.status_code == 200, release.text


async def test_a_vm_lease_defines_and_starts_a_domain_that_release_removes(
    gateway: Gateway, network: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    root = tmp_path_factory.mktemp("vmhost")
    base, disks = root / "base.qcow2", root / "disks"
    make_base = ["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"]
    await asyncio.to_thread(subprocess.run, make_base, check=True)
    config = root / "worker.toml"
    config.write_text(
        f'[worker]\nminer_url = "wss://127.0.0.1:{network.miner_port}/v1/worker"\n'
        f'token = "{network.new_token()}"\nhome = "{network.root / "vmhost"}"\n'
        f'[worker.vm]\nenabled = true\nuri = "test:///default"\n'
        f'base_image = "{base}"\ndisk_dir = "{disks}"\n'
    )
    network.start("vmhost", "worker", "--config", str(config))
    await idle_workers(network, 2)  # "plain" from the test before, and the VM host
    api, headers = gateway.api, gateway.headers

    created = await api.post("/v1/leases", json=vm_lease(), headers=headers)
    assert created.status_code == 201, created.text + network.log("vmhost")
    lease = created.json()
    assert lease["worker_id"] == worker_id(network, "vmhost")
    assert lease["spec"]["kind"] == "vm"

    async def running() -> dict[str, Any] | None:
        view = (await api.get(f"/v1/leases/{lease['id']}", headers=headers)).json()
        vm = view.get("vm") or {}
        return view if vm.get("state") == "running" and view.get("access") else None

    shown = await eventually(running, "the VM never ran:\n" + network.log("vmhost"))
    name = f"lease-{gateway.desk.anonymous_id(lease['id'])}"
    assert shown["vm"]["domain"] == name
    assert shown["access"] == f"ssh byteleap@{shown['vm']['address']}"
    assert sorted(p.name for p in disks.iterdir()) == [f"{name}-seed.iso", f"{name}.qcow2"]

    released = await api.post(f"/v1/leases/{lease['id']}/release", headers=headers)
    assert released.status_code == 200 and released.json()["state"] == "released"

    async def miner_status() -> LeaseStatus:
        async with MinerClient(network.validator, await miner_neuron(network)) as client:
            return await client.lease_status(gateway.desk.anonymous_id(lease["id"]))

    async def removed() -> bool:
        vm = (await miner_status()).vm
        return vm is not None and vm.state == "absent"

    await eventually(removed, "the VM was not removed:\n" + network.log("vmhost"))
    assert list(disks.iterdir()) == [] and base.is_file()
    await idle_workers(network, 2)  # the VM host is back on offer
