"""The miner pool offers every listed worker except those no honest miner could list."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from byteleap.chain.port import Metagraph, NeuronInfo
from byteleap.config import GatewaySettings
from byteleap.gateway.miners import MinerPool
from byteleap.keys import create_wallet, load_wallet
from byteleap.net.messages import WorkerList, WorkerView
from gateway.supply_samples import listed


class FakeClient:
    """What the pool reads from one miner: its listing, nothing else."""

    def __init__(self, miner: NeuronInfo, workers: list[WorkerView]) -> None:
        self.miner = miner
        self.listing = WorkerList(miner_hotkey=miner.hotkey, workers=workers)

    async def workers(self) -> WorkerList:
        return self.listing

    async def __aexit__(self, *exc: Any) -> None:
        return None


class FakeChain:
    def __init__(self, neurons: list[NeuronInfo]) -> None:
        self.neurons = neurons

    async def metagraph(self) -> Metagraph:
        return Metagraph(netuid=1, block=1, neurons=self.neurons)


def neuron(uid: int) -> NeuronInfo:
    return NeuronInfo(
        uid=uid, hotkey=f"5Miner{uid}", coldkey="5Cold", stake=0.0, axon_ip="127.0.0.1",
        axon_port=9000 + uid, certificate="00",
    )  # fmt: skip


async def offers_from(wallet_path: Path, listings: list[list[WorkerView]]) -> list[tuple[str, str]]:
    create_wallet("gw", "default", path=wallet_path)
    wallet = load_wallet("gw", "default", path=wallet_path)
    neurons = [neuron(uid) for uid in range(len(listings))]
    pool = MinerPool(wallet, FakeChain(neurons), GatewaySettings())  # type: ignore[arg-type]
    for n, workers in zip(neurons, listings, strict=True):
        pool._clients[n.hotkey] = FakeClient(n, workers)  # type: ignore[assignment]
    return sorted(o.key for o in await pool.offers())


@pytest.mark.adversarial
async def test_a_worker_claiming_ten_terabytes_of_vram_is_never_offered(
    wallet_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    honest, liar = listed(), listed(vram_mib=10 * 1024**3)
    with caplog.at_level(logging.WARNING, logger="byteleap.gateway.miners"):
        offered = await offers_from(wallet_path, [[honest, liar]])
    assert offered == [("5Miner0", honest.worker_id)]
    assert any(getattr(r, "worker", None) == liar.worker_id for r in caplog.records)


@pytest.mark.adversarial
async def test_a_duplicated_worker_is_never_offered(wallet_path: Path) -> None:
    # Miner 1 lists a card miner 0 already lists (same GPU uuid); miner 1 also lists one box
    # twice under two worker ids (same key).
    a, copy_of_a = listed(uuid_tag="a-card"), listed(uuid_tag="a-card")
    twin_1, twin_2 = listed(key="cd" * 32), listed(key="cd" * 32)
    honest = listed()
    offered = await offers_from(wallet_path, [[a, honest], [copy_of_a, twin_1, twin_2]])
    assert offered == [("5Miner0", honest.worker_id)]
