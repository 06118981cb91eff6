"""What the devnet sets up for its miner-level cheaters (``--cheaters``, `proof.cheats`).

- multiplex: its workers share one device lock file in the miner's folder.
- shared-hotkeys: the second hotkey's workers get copies of the first's worker keys before
  either starts, so both miners list workers with the same identities.
- wash-lease: once the gateway is up, the cheater makes itself a customer and rents its own
  worker by its unique claim, for the shortest lease and the fewest receipts it can; what it
  paid goes into the summary.

Everything else a cheater does, its workers do (``worker.behaviours``).

What one host cannot show: every devnet worker shares the same cores, and at n = 256 a
challenge's round trip (~0.4 s with ~40 processes on 2 cores) dwarfs its solve, so the
multiplexer's four turns on its lock cost it little, and it earns about three honest workers'
worth, not one. The batch credit rule needs devices of their own to bite; the round runner
against simulated devices (tests/validator/test_cheating_miners.py) is where it is shown.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from pathlib import Path

from byteleap.chain.port import Metagraph
from byteleap.devnet.state import (
    DEVICE_PACE_S,
    DevnetState,
    check_children,
    lease_when_free,
    workers_of,
)
from byteleap.devnet.summary import DevnetSummary, WashLeaseSummary
from byteleap.gateway.core import create_tenant_with_key
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.protocol.identity import WorkerIdentity, duplicated_workers
from byteleap.sdk import AsyncClient
from byteleap.sdk.errors import ApiError
from byteleap.store import open_store
from byteleap.worker.behaviours import DEVICE_LOCK_FILE, WASH_CORES
from byteleap.worker.identity import KEY_FILE, load_or_create_key

log = logging.getLogger(__name__)

WASH_LEASE = "wash-lease"
WASH_BALANCE = 10.0  # the cheater's own money, paid in as a customer
WASH_DURATION_S = 10.0  # the shortest lease the gateway sells
WASH_RECEIPTS = 2  # billed seconds it waits for before it releases the lease
WASH_TRY_S = 30.0  # its worker is between challenges within a round or two


def worker_home(state: DevnetState, name: str, index: int) -> Path:
    return state.options.home / f"{name}-worker{index}"


def worker_args(state: DevnetState, name: str) -> list[str]:
    """Extra ``byteleap worker`` arguments for the miner ``name``'s workers."""
    pace = ["--device-pace", f"{DEVICE_PACE_S:g}"] if state.cheats else []
    if state.cheats.get(name) == "multiplex":
        lock = str((state.options.home / name / DEVICE_LOCK_FILE).resolve())
        return [*pace, "--device-lock", lock]
    return pace


def share_worker_keys(state: DevnetState) -> None:
    """Give each shared-hotkeys twin's workers the keys of its first hotkey's workers."""
    for twin, first in state.twins.items():
        for index in range(1, workers_of(state, twin) + 1):
            source = worker_home(state, first, index)
            load_or_create_key(source)
            target = worker_home(state, twin, index)
            target.mkdir(parents=True, exist_ok=True)
            (target / KEY_FILE).touch(mode=0o600)
            shutil.copyfile(source / KEY_FILE, target / KEY_FILE)


async def wash_leases(state: DevnetState) -> None:
    for name, cheat in state.cheats.items():
        if cheat == WASH_LEASE:
            state.summary.wash_leases.append(await _wash_lease(state, name))


async def _wash_lease(state: DevnetState, name: str) -> WashLeaseSummary:
    hotkey = state.wallets[name].hotkey.ss58_address
    store = await open_store(state.store_url)
    try:
        api_key = await create_tenant_with_key(store, f"{name}-as-customer", balance=WASH_BALANCE)
    finally:
        await store.close()
    # Only its own workers report this many cores: the filter that finds them.
    spec = {"duration_s": WASH_DURATION_S, "resources": {"cpu_cores": WASH_CORES}}
    async with AsyncClient(state.gateway_url, api_key) as client:
        try:
            lease = await lease_when_free(
                state, client, spec, wait_s=WASH_TRY_S,
                on_wait=lambda exc: state.progress(
                    f"{name} tries to rent its own worker: {exc.detail}"
                ),
            )  # fmt: skip
        except ApiError as exc:  # refused, or its worker was never offered (Unavailable)
            return WashLeaseSummary(miner=hotkey, refused=str(exc))
        deadline = time.monotonic() + WASH_TRY_S
        view = lease
        while view.receipts < WASH_RECEIPTS and not view.state.is_terminal:
            check_children(state)
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.3)
            view = await client.get_lease(lease.id)
        if not view.state.is_terminal:
            view = await client.release_lease(lease.id)
    log.info("wash lease", extra={"miner": name, "lease": view.id, "paid": view.cost})
    return WashLeaseSummary(
        miner=hotkey,
        lease_id=view.id,
        worker=view.worker_id,
        own_worker=view.miner_hotkey == hotkey,
        state=view.state.value,
        receipts=view.receipts,
        paid=round(view.cost, 6),
    )


async def flagged_workers(state: DevnetState, metagraph: Metagraph) -> dict[str, int]:
    """How many of each miner's listed workers `duplicated_workers` flags, over every miner's
    listing as the validator reads it (shared-hotkeys shows here whether or not scoring and
    the gateway act on the flag yet)."""
    validator = state.wallets["validator"]
    miners = {state.wallets[name].hotkey.ss58_address for name in state.wallets} - {
        validator.hotkey.ss58_address
    }
    identities = []
    for neuron in metagraph.neurons:
        if neuron.hotkey not in miners:
            continue
        try:
            async with MinerClient(validator, neuron, timeout_s=5) as client:
                listing = await client.workers()
        except MinerCallError:
            continue
        identities += [
            WorkerIdentity(
                neuron.hotkey,
                w.worker_id,
                w.public_key,
                tuple(g.uuid for g in w.hardware.gpus),
            )
            for w in listing.workers
        ]
    counts: dict[str, int] = {}
    for hotkey, _ in duplicated_workers(identities):
        counts[hotkey] = counts.get(hotkey, 0) + 1
    return counts


def weight_shares(summary: DevnetSummary) -> None:
    """Each miner's share of the miners' weights, and the cheaters' share together."""
    total = sum(m.weight for m in summary.miners)
    for miner in summary.miners:
        miner.weight_share = round(miner.weight / total, 6) if total > 0 else 0.0
    if any(m.cheater is not None for m in summary.miners):
        summary.cheater_share = round(
            sum(m.weight_share for m in summary.miners if m.cheater is not None), 6
        )
