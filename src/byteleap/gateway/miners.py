"""The gateway's view of the supply: miners from the metagraph, their workers as offers.

One pinned, signed `MinerClient` per miner is kept open and reused; the metagraph
is re-read at most every ``refresh_s``. A miner that cannot be reached simply
offers nothing this time. Workers that ``supply_checks.refused_workers`` names (impossible
hardware, a key or GPU shared with another listed worker) are never offered; the GPU models
on these offers are still the claims, which ``trust.VerifiedSupply`` replaces by what the
challenges measured.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from bittensor.signing import WalletLike, resolve_signer

from byteleap.chain.port import ChainError, ChainPort, NeuronInfo
from byteleap.config import GatewaySettings
from byteleap.gateway.scheduler import GpuSpec, WorkerKey, WorkerOffer, WorkerState
from byteleap.gateway.supply_checks import refused_workers
from byteleap.net.messages import (
    ArtifactPiece,
    CheckpointSet,
    JobLogs,
    JobRequest,
    JobStatus,
    LeaseRequest,
    LeaseStatus,
    WorkerList,
    WorkerView,
)
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.net.receipts import LeaseReceipt

log = logging.getLogger(__name__)


def offer_of(
    miner: str, worker: WorkerView, settings: GatewaySettings, rtt_ms: float
) -> WorkerOffer:
    hw = worker.hardware
    return WorkerOffer(
        miner_hotkey=miner,
        worker_id=worker.worker_id,
        state=WorkerState(worker.state.value),
        gpus=tuple(GpuSpec(model=g.model, vram_mib=g.vram_mib) for g in hw.gpus),
        cpu_cores=hw.cpu.cores_logical,
        ram_mib=hw.memory.available_mib,
        region=settings.region,
        price_per_gpu_s=settings.price_per_gpu_s,
        price_per_cpu_s=settings.price_per_cpu_s,
        rtt_ms=rtt_ms,
        vm_leases=hw.vm_leases,
        public_key=worker.public_key,
    )


class MinerApi(Protocol):
    """What the gateway asks of one miner (`MinerClient` over signed HTTPS; the benchmark's
    simulated miner in-process)."""

    async def submit_job(self, request: JobRequest) -> JobStatus: ...
    async def job_status(self, job_id: str) -> JobStatus: ...
    async def job_logs(self, job_id: str, *, after: int = 0, wait_s: float = 0.0) -> JobLogs: ...
    async def cancel_job(self, job_id: str) -> JobStatus: ...
    async def read_artifact(
        self, job_id: str, path: str, *, offset: int = 0, length: int = ...
    ) -> ArtifactPiece: ...
    async def drop_artifacts(self, job_id: str) -> JobStatus: ...
    async def read_checkpoint(self, job_id: str) -> CheckpointSet: ...
    async def start_lease(self, request: LeaseRequest) -> LeaseStatus: ...
    async def extend_lease(self, lease_id: str, ends_at: float) -> LeaseStatus: ...
    async def release_lease(self, lease_id: str) -> LeaseStatus: ...
    async def countersign(self, receipt: LeaseReceipt) -> LeaseReceipt: ...


class Supply(Protocol):
    """The workers on offer and a way to reach their miners."""

    async def offers(self) -> list[WorkerOffer]: ...
    async def client(self, hotkey: str) -> MinerApi: ...
    async def close(self) -> None: ...


class MinerPool:
    def __init__(
        self,
        wallet: WalletLike,
        chain: ChainPort,
        settings: GatewaySettings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wallet = wallet
        self.chain = chain
        self.settings = settings
        self.clock = clock
        self.self_hotkey = resolve_signer(wallet, role="hotkey").ss58_address
        self._neurons: dict[str, NeuronInfo] = {}
        self._clients: dict[str, MinerClient] = {}
        self._read_at = float("-inf")
        self._refused: dict[WorkerKey, str] = {}

    async def refresh(self, *, force: bool = False) -> None:
        if not force and self.clock() - self._read_at < self.settings.metagraph_refresh_s:
            return
        try:
            metagraph = await self.chain.metagraph()
        except ChainError as exc:
            log.warning("metagraph unavailable; keeping the last one", extra={"why": str(exc)})
            return
        self._read_at = self.clock()
        self._neurons = {
            n.hotkey: n
            for n in metagraph.neurons
            if n.hotkey != self.self_hotkey and n.axon_ip and n.axon_port and n.certificate
        }
        for hotkey in list(self._clients):
            known = self._neurons.get(hotkey)
            client = self._clients[hotkey]
            if known is None or known != client.miner:  # gone, or moved: reconnect
                await self._drop(hotkey)

    async def client(self, hotkey: str) -> MinerClient:
        client = self._clients.get(hotkey)
        if client is not None:
            return client
        if hotkey not in self._neurons:
            await self.refresh(force=True)  # a fresh pool (a restart) has read nothing yet
        neuron = self._neurons.get(hotkey)
        if neuron is None:
            raise MinerCallError(f"miner {hotkey} is not on the metagraph", reason="unknown_miner")
        client = MinerClient(self.wallet, neuron, timeout_s=self.settings.miner_timeout_s)
        await client.__aenter__()
        self._clients[hotkey] = client
        return client

    async def _drop(self, hotkey: str) -> None:
        client = self._clients.pop(hotkey, None)
        if client is not None:
            await client.__aexit__(None, None, None)

    async def offers(self) -> list[WorkerOffer]:
        await self.refresh()
        hotkeys = list(self._neurons)
        results = await asyncio.gather(
            *(self._listing_of(hotkey) for hotkey in hotkeys), return_exceptions=True
        )
        listings: dict[str, tuple[WorkerList, float]] = {}
        for hotkey, result in zip(hotkeys, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, MinerCallError):
                    raise result
                continue
            listings[hotkey] = result
        refused = refused_workers({h: listing.workers for h, (listing, _) in listings.items()})
        self._log_refusals(refused)
        return [
            offer_of(hotkey, w, self.settings, rtt_ms)
            for hotkey, (listing, rtt_ms) in listings.items()
            for w in listing.workers
            if (hotkey, w.worker_id) not in refused
        ]

    def _log_refusals(self, refused: dict[WorkerKey, str]) -> None:
        # Listings are re-read every dispatch pass: say so once per worker, not every pass.
        for (miner, worker), why in refused.items():
            if self._refused.get((miner, worker)) != why:
                extra = {"miner": miner, "worker": worker, "why": why}
                log.warning("worker not offered", extra=extra)
        self._refused = refused

    async def _listing_of(self, hotkey: str) -> tuple[WorkerList, float]:
        try:
            client = await self.client(hotkey)
            started = time.perf_counter()
            listing = await client.workers()
            rtt_ms = (time.perf_counter() - started) * 1000
        except MinerCallError as exc:
            log.info("miner offers nothing now", extra={"miner": hotkey, "why": exc.reason})
            await self._drop(hotkey)
            raise
        return listing, rtt_ms

    async def close(self) -> None:
        for hotkey in list(self._clients):
            await self._drop(hotkey)
