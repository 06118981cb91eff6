"""Synthetic miners for ``byteleap bench validator``: one process, one HTTPS port, any number of
miner hotkeys with their workers, answering a real validator round.

What the validator receives is what a real miner sends: TLS 1.3 under the key its metagraph
pins, btauth/1 checked on every request and signed on every response (``net.auth``), batches
kept by the real ``miner.challenge_batches.BatchBook``, commitments signed by each worker's own
Ed25519 key, and reveals of row slices with full Merkle proofs that pass verification. What is
synthetic is behind it: no worker computes a product. Each challenge is committed at once to a
``proof.synthetic`` proof for the draw the benchmark's validator will make, which these miners
know in advance from the shared key (``proof.synthetic.seeded_request``).

All miners share the port and the TLS key and are told apart by the receiver each request is
signed for; the validator still opens a pinned context and a connection pool per miner, as it
would for separate machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
import socket
import tempfile
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from bittensor import http_auth, sp_core
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from byteleap.errors import ByteleapError
from byteleap.miner.challenge_batches import BatchBook
from byteleap.miner.errors import UnknownChallenge
from byteleap.miner.signed_http import error_response, parse_body
from byteleap.net.auth import AuthRejected, RequestVerifier, sign_response
from byteleap.net.messages import (
    ChallengeBatch,
    ChallengeBatchReply,
    MessageError,
    WorkerList,
    WorkerView,
)
from byteleap.net.ratelimit import RateLimiter
from byteleap.net.tls import load_or_create_identity
from byteleap.proof import ChallengeSpec, Commitment, RevealRequest
from byteleap.proof.synthetic import SyntheticProof, seeded_request, synthesize
from byteleap.protocol.hardware import CpuInfo, DiskInfo, GpuInfo, HardwareInventory, MemoryInfo
from byteleap.protocol.states import WorkerState

#: uvicorn's listen backlog: a full round opens thousands of connections at once.
BACKLOG = 4096
MAX_RESULTS_WAIT_S = 20.0


class MinersConfig(BaseModel):
    workers: int
    workers_per_miner: int
    draw_key: str  # hex
    rows: int
    cols: int


class MinerNeuron(BaseModel):
    """What the benchmark's metagraph says about one synthetic miner."""

    hotkey: str
    port: int
    certificate: str  # hex, the pinned TLS key


def synthetic_hardware() -> HardwareInventory:
    """One H100, as a worker would report it (the benchmark sizes its own challenges)."""
    return HardwareInventory(
        hostname="synthetic",
        os="Linux-6.8.0-x86_64-with-glibc2.39",
        python="3.11.9",
        cpu=CpuInfo(model="AMD EPYC 9654", cores_physical=96, cores_logical=192, freq_mhz=2400.0),
        memory=MemoryInfo(total_mib=1_031_000, available_mib=1_000_000),
        disk=DiskInfo(path="/", total_gib=3576.0, free_gib=3001.5),
        gpus=[
            GpuInfo(
                index=0,
                uuid="GPU-3b1f0c2e-8c4d-4f7a-9d2e-000000000000",
                model="NVIDIA H100 80GB HBM3",
                vram_mib=81559,
                driver_version="550.54.15",
                cuda_version="12.4",
                pci_bus_id="00000000:18:00.0",
            )
        ],
        probed_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    )


@dataclass(frozen=True)
class Draw:
    """The benchmark's seeded reveal draw, which every synthetic miner knows."""

    key: bytes
    rows: int
    cols: int


@dataclass
class SyntheticMiner:
    """One miner. A batch's proofs are built together, off the event loop, and its commitments
    released together, as workers of one model sized to the same expected time would finish;
    one at a time, each results poll of the validator would carry a single commitment."""

    keypair: sp_core.Keypair
    verifier: RequestVerifier
    views: list[WorkerView]
    keys: dict[str, Ed25519PrivateKey]
    draw: Draw
    solver: Executor
    proofs: dict[str, SyntheticProof] = field(default_factory=dict)
    pending: dict[str, asyncio.Future[SyntheticProof]] = field(default_factory=dict)
    book: BatchBook = field(init=False)

    def __post_init__(self) -> None:
        self.book = BatchBook(self._commit)

    @property
    def hotkey(self) -> str:
        return str(self.keypair.ss58_address)

    def start(self, caller: str, batch: ChallengeBatch) -> ChallengeBatchReply:
        loop = asyncio.get_running_loop()
        specs = [
            item.spec
            for item in batch.items
            if item.spec.challenge_id not in self.pending
            and item.spec.challenge_id not in self.proofs
        ]
        futures = {spec.challenge_id: loop.create_future() for spec in specs}
        self.pending.update(futures)
        # In a process of its own, one batch at a time: a round's proofs take minutes, and a
        # real miner's requests do not wait for its neighbours' GPUs. (A thread would hold the
        # GIL between the event loop's every system call and starve it past btauth/1's 10 s.)
        draw = self.draw
        job = loop.run_in_executor(
            self.solver, synthesize_batch, draw.key, draw.rows, draw.cols, specs
        )

        def release(done: asyncio.Future[list[SyntheticProof]]) -> None:
            failed = done.cancelled() or done.exception() is not None
            proofs = [] if failed else done.result()
            for k, future in enumerate(futures.values()):
                if future.done():
                    continue
                if failed:
                    future.cancel()
                else:
                    future.set_result(proofs[k])

        job.add_done_callback(release)
        return self.book.start(caller, batch)

    async def _commit(self, worker_id: str, spec: ChallengeSpec) -> Commitment:
        proof = await self.pending.pop(spec.challenge_id)
        self.proofs[spec.challenge_id] = proof
        return proof.commitment(self.keys[worker_id].sign)

    def reveal(self, request: RevealRequest) -> BaseModel:
        proof = self.proofs.pop(request.challenge_id, None)
        if proof is None or proof.request != request:
            raise UnknownChallenge(f"nothing to reveal for {request.challenge_id}")
        return proof.reveal()


def synthesize_batch(
    key: bytes, rows: int, cols: int, specs: list[ChallengeSpec]
) -> list[SyntheticProof]:
    return [synthesize(spec, seeded_request(key, spec, s=rows, t=cols)) for spec in specs]


def build_miners(config: MinersConfig, solver: Executor) -> list[SyntheticMiner]:
    draw = Draw(bytes.fromhex(config.draw_key), config.rows, config.cols)
    hardware = synthetic_hardware()

    async def anyone(_: str) -> bool:
        return True

    miners = []
    remaining = config.workers
    index = 0
    while remaining > 0:
        count = min(config.workers_per_miner, remaining)
        remaining -= count
        keypair = sp_core.Keypair.create_from_seed(os.urandom(32))
        keys: dict[str, Ed25519PrivateKey] = {}
        views = []
        for _ in range(count):
            index += 1
            worker_id = f"w-{index:016x}"
            key = Ed25519PrivateKey.generate()
            keys[worker_id] = key
            public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
            views.append(
                WorkerView(
                    worker_id=worker_id,
                    public_key=public,
                    state=WorkerState.IDLE,
                    profile="cuda-f16",
                    hardware=hardware,
                    last_seen=0.0,
                    ip=f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}",
                )
            )
        verifier = RequestVerifier(
            self_hotkey=keypair.ss58_address,
            authorize=anyone,
            limiter=RateLimiter(rate_per_s=1e9, burst=1e9),
        )
        miners.append(SyntheticMiner(keypair, verifier, views, keys, draw, solver))
    return miners


Handler = Callable[[Request, SyntheticMiner, str, bytes], Awaitable[BaseModel]]


def create_app(miners: list[SyntheticMiner]) -> Starlette:
    by_hotkey = {m.hotkey: m for m in miners}

    def route(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                miner = by_hotkey.get(request.headers.get(http_auth.HEADER_RECEIVER, ""))
                if miner is None:
                    raise AuthRejected("no such miner here", reason="wrong_receiver", status=401)
                body = await request.body()
                query = request.url.query
                path = request.url.path + (f"?{query}" if query else "")
                caller = await miner.verifier.verify(
                    request.headers, body, method=request.method, path=path
                )
                answer = (await handler(request, miner, caller, body)).model_dump_json().encode()
            except ByteleapError as exc:
                return error_response(exc)
            headers = sign_response(
                miner.keypair, method=request.method, path=request.url.path, body=answer,
                caller=caller,
            )  # fmt: skip
            return Response(answer, media_type="application/json", headers=headers)

        return endpoint

    async def workers(_: Request, miner: SyntheticMiner, caller: str, body: bytes) -> BaseModel:
        return WorkerList(miner_hotkey=miner.hotkey, workers=miner.views)

    async def start_batch(_: Request, miner: SyntheticMiner, caller: str, body: bytes) -> BaseModel:
        return miner.start(caller, parse_body(ChallengeBatch, body))

    async def results(request: Request, miner: SyntheticMiner, caller: str, _: bytes) -> BaseModel:
        seen = int(request.query_params.get("seen", 0))
        wait = min(max(float(request.query_params.get("wait_s", 0.0)), 0.0), MAX_RESULTS_WAIT_S)
        batch_id = request.path_params["batch_id"]
        return await miner.book.results(caller, batch_id, seen=max(seen, 0), wait_s=wait)

    async def reveal(
        request: Request, miner: SyntheticMiner, caller: str, body: bytes
    ) -> BaseModel:
        asked = parse_body(RevealRequest, body)
        if asked.challenge_id != request.path_params["challenge_id"]:
            raise MessageError("challenge id in path and body differ")
        return miner.reveal(asked)

    return Starlette(
        routes=[
            Route("/v1/workers", route(workers), methods=["GET"]),
            Route("/v1/challenge-batches", route(start_batch), methods=["POST"]),
            Route("/v1/challenge-batches/{batch_id}/results", route(results), methods=["GET"]),
            Route("/v1/challenges/{challenge_id}/reveal", route(reveal), methods=["POST"]),
        ]
    )


async def serve_miners(
    config: MinersConfig,
    announce: Callable[[list[MinerNeuron]], None],
    stop: Awaitable[object],
) -> None:
    """Serve the synthetic miners on one free port of 127.0.0.1 until ``stop`` is done;
    ``announce`` gets their neurons once they answer."""
    with (
        ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as solver,
        tempfile.TemporaryDirectory(prefix="byteleap-bench-miners-") as tls_dir,
    ):
        miners = build_miners(config, solver)
        identity = load_or_create_identity(Path(tls_dir))
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        port = int(listener.getsockname()[1])
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(miners),
                ssl_certfile=str(identity.cert_path),
                ssl_keyfile=str(identity.key_path),
                backlog=BACKLOG,
                log_level="warning",
                access_log=False,
                lifespan="off",
                timeout_keep_alive=600,
            )
        )
        serving = asyncio.create_task(server.serve(sockets=[listener]))
        while not server.started:
            if serving.done():
                await serving
            await asyncio.sleep(0.02)
        certificate = identity.public_key.hex()
        announce([MinerNeuron(hotkey=m.hotkey, port=port, certificate=certificate) for m in miners])
        await stop
        solver.shutdown(wait=False, cancel_futures=True)
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        for miner in miners:
            miner.book.close()
