"""``byteleap bench validator``: the validator's own CPU per challenge in one real round.

Three processes, so that the validator's CPU is its process's CPU and nothing else:

- this one: sets up the store (a scratch PostgreSQL database, dropped after, or a SQLite file),
  samples the PostgreSQL backends' CPU, assembles the report;
- the synthetic miners (``devnet.synthetic_miners``): real HTTPS, real signatures, synthetic
  proofs;
- the validator: one real round (``validator.rounds.RoundRunner`` over ``net.miner_client``,
  store, TLS, btauth/1, ``proof.verify``) under the stage meter (``devnet.round_meter``).

Both children start as ``python -m byteleap.devnet.validator_bench <role>``, read their
configuration as one JSON line on stdin and answer with JSON lines on stdout. BLAS in both is
limited to ``blas_threads`` (default 1): idle OpenBLAS threads spin after each product, which
on a machine of several cores bills the validator a multiple of the work it did, and one core
is what the benchmark claims.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import secrets
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

from bittensor import sp_core
from pydantic import BaseModel

from byteleap.chain.port import ChainPort, Metagraph, NeuronInfo
from byteleap.devnet.round_meter import StageMeter, instrumented
from byteleap.devnet.synthetic_miners import MinerNeuron, MinersConfig, serve_miners
from byteleap.logs import configure_logging
from byteleap.net.messages import WorkerView
from byteleap.proof import ChallengeSpec, Commitment, Profile, RevealRequest
from byteleap.proof.synthetic import seeded_request
from byteleap.store import ChallengeStatus, open_store, upgrade
from byteleap.validator.bench import PgServer
from byteleap.validator.rounds import ChallengePlan, RoundParams, RoundRunner

#: Each miner's workers: a full subnet is 256 miners of 100.
WORKERS_PER_MINER = 100
#: The round a validator must cover, and the share of it the CPU may fill (40% headroom).
ROUND_S = 240.0
BUSY_SHARE = 0.6
GOAL_CHALLENGES = 25_600
GOAL_REVEAL_BYTES = 300_000
#: Long enough for any round this benchmark runs: it measures cost, not deadlines.
PATIENCE_S = 3600.0
_SAMPLE_S = 0.25
_STREAM_LIMIT = 1 << 24

SYNTHETIC_NOTE = (
    "synthetic miners: each reveal is a slice of n-wide rows (the segments that hold the drawn "
    "columns, the other segments' digests) with full Merkle proofs that pass proof.verify, but "
    "only the drawn entries are computed and the unsampled leaves and subtrees are random; "
    "the validator draws rows and columns from a key the miners share (seeded per challenge) "
    "instead of its CSPRNG, so they can answer without the product"
)
CPU_NOTE = (
    "cpu_s: time.process_time of the validator process (all its threads) over the round; "
    "stages: time.thread_time around each step in the thread that ran it (coroutines: their "
    "own steps only); store_server: the PostgreSQL backends' CPU from /proc, sampled"
)


class RoundConfig(BaseModel):
    url: str
    neurons: list[MinerNeuron]
    n: int
    products: int
    profile: Profile
    rows: int
    cols: int
    draw_key: str
    workers_per_miner: int
    profile_path: str | None = None


async def run_validator_bench(
    workers: int,
    *,
    n: int = 32768,
    products: int = 1,
    store: str = "postgres",
    url: str | None = None,
    workers_per_miner: int = WORKERS_PER_MINER,
    blas_threads: int = 1,
    profile_path: str | None = None,
    server: PgServer | None = None,
) -> dict[str, Any]:
    """Run one round of ``workers`` challenges; returns the JSON object the command prints."""
    profile = Profile.CUDA_F16
    ChallengeSpec(  # refuse a size the profile cannot make exact before starting anything
        challenge_id="x", seed=bytes(32), n=n, profile=profile, issued_at=0, deadline=0,
        products=products,
    )  # fmt: skip
    draw_key = secrets.token_hex(32)
    env = dict(os.environ)
    if blas_threads > 0:
        for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
            env[name] = str(blas_threads)
    miners_env = {**env, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    load_before = os.getloadavg()[0]
    async with _scratch_store(store, url, server or PgServer()) as (store_url, database):
        await upgrade(store_url)
        miners_config = MinersConfig(
            workers=workers, workers_per_miner=workers_per_miner, draw_key=draw_key,
            rows=RoundParams.rows, cols=RoundParams.cols,
        )  # fmt: skip
        async with _child("miners", miners_env) as miners:
            neurons = [
                MinerNeuron.model_validate(x)
                for x in json.loads(await _exchange(miners, miners_config))
            ]
            config = RoundConfig(
                url=store_url, neurons=neurons, n=n, products=products, profile=profile,
                rows=RoundParams.rows, cols=RoundParams.cols, draw_key=draw_key,
                workers_per_miner=workers_per_miner, profile_path=profile_path,
            )  # fmt: skip
            async with _child("validator", env) as validator:
                sampler = _BackendCpu(database)
                sampling = asyncio.create_task(sampler.run())
                try:
                    result = json.loads(await _exchange(validator, config))
                finally:
                    sampling.cancel()
                server_cpu_s = sampler.total_s() if database else None
            assert miners.stdin is not None and miners.stdout is not None
            miners.stdin.close()
            miners_cpu = json.loads(await miners.stdout.readline())["cpu_s"]
    return _report(
        result,
        workers=workers, miners=len(neurons), workers_per_miner=workers_per_miner, n=n,
        products=products, profile=profile, store_url=store_url,
        store_server_cpu_s=server_cpu_s, miners_cpu_s=miners_cpu,
        blas_threads=blas_threads, profiled=profile_path is not None, load_before=load_before,
    )  # fmt: skip


def _report(result: dict[str, Any], **facts: Any) -> dict[str, Any]:
    challenges = max(1, int(result["challenges"]))
    per_challenge_ms = {k: round(v / challenges * 1e3, 4) for k, v in result["stages_s"].items()}
    cpu_ms = result["cpu_s"] / challenges * 1e3
    server_s = facts["store_server_cpu_s"]
    reveals = result["reveal_bytes"]
    return {
        "workers": facts["workers"],
        "miners": facts["miners"],
        "workers_per_miner": facts["workers_per_miner"],
        "n": facts["n"],
        "products": facts["products"],
        "profile": str(facts["profile"]),
        "store": facts["store_url"].split("+", 1)[0],
        "challenges": result["challenges"],
        "passed": result["passed"],
        "failed": result["failed"],
        "unreachable_miners": result["unreachable"],
        "synthetic_leaves": True,
        "synthetic": SYNTHETIC_NOTE,
        "cpu_measure": CPU_NOTE,
        "profiled": facts["profiled"],
        "cpu_s": round(result["cpu_s"], 3),
        "cpu_ms_per_challenge": round(cpu_ms, 4),
        "stage_ms_per_challenge": per_challenge_ms,
        "store_server_cpu_ms_per_challenge": (
            round(server_s / challenges * 1e3, 4) if server_s is not None else None
        ),
        "round_wall_s": round(result["wall_s"], 3),
        "covered_workers_per_core": math.floor(ROUND_S * BUSY_SHARE / (cpu_ms / 1e3))
        if cpu_ms > 0
        else None,
        "covered_rule": f"{ROUND_S:g} s round x {BUSY_SHARE:g} (40% headroom) / cpu per challenge",
        "goal_cpu_ms_per_challenge": round(ROUND_S * BUSY_SHARE / GOAL_CHALLENGES * 1e3, 4),
        "reveal_bytes": round(sum(reveals) / len(reveals)) if reveals else None,
        "goal_reveal_bytes": GOAL_REVEAL_BYTES,
        "received_bytes_per_challenge": round(result["answer_bytes"] / challenges),
        "answers": result["answers"],
        "miners_process_cpu_s": round(facts["miners_cpu_s"], 3),
        "blas_threads": facts["blas_threads"] or "library default",
        "cpu_count": os.cpu_count(),
        "load_avg_1m_before": round(facts["load_before"], 2),
        "load_avg_1m_after": round(os.getloadavg()[0], 2),
    }


@contextlib.asynccontextmanager
async def _scratch_store(
    store: str, url: str | None, server: PgServer
) -> AsyncIterator[tuple[str, str | None]]:
    """A store URL and, for a scratch PostgreSQL database, its name (dropped after)."""
    if url is not None:
        yield url, None
        return
    if store == "sqlite":
        with tempfile.TemporaryDirectory(prefix="byteleap-bench-") as folder:
            yield f"sqlite+aiosqlite:///{Path(folder) / 'validator.db'}", None
        return
    if store != "postgres":
        raise ValueError(f"unknown store {store!r}: postgres or sqlite")
    database = f"byteleap_bench_{secrets.token_hex(4)}"
    await server.admin(f'CREATE DATABASE "{database}"')
    try:
        yield server.url(database), database
    finally:
        await server.admin(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def _child(role: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "byteleap.devnet.validator_bench", role,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
        limit=_STREAM_LIMIT,
    )  # fmt: skip
    try:
        yield process
    finally:
        if process.returncode is None:
            if process.stdin is not None:
                process.stdin.close()
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()


async def _exchange(process: asyncio.subprocess.Process, config: BaseModel) -> str:
    """Send ``config`` as one line; the child's one-line answer."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(config.model_dump_json().encode() + b"\n")
    await process.stdin.drain()
    line = await process.stdout.readline()
    if not line:
        raise RuntimeError(f"the benchmark's child exited ({await process.wait()}) without answer")
    return line.decode()


class _BackendCpu:
    """The CPU of the PostgreSQL backends serving ``database``, from /proc, sampled (a backend
    that exits between two samples loses its last interval: a lower bound)."""

    def __init__(self, database: str | None) -> None:
        self.database = database
        self.seen: dict[int, float] = {}
        self._tick = os.sysconf("SC_CLK_TCK")

    async def run(self) -> None:
        while self.database is not None:
            self.sample()
            await asyncio.sleep(_SAMPLE_S)

    def sample(self) -> None:
        assert self.database is not None
        marker = f" {self.database} ".encode()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                if marker not in (entry / "cmdline").read_bytes():
                    continue
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            self.seen[int(entry.name)] = (int(fields[11]) + int(fields[12])) / self._tick

    def total_s(self) -> float:
        if self.database is not None:
            self.sample()
        return sum(self.seen.values())


# The children.


class _BenchChain:
    """The one chain call a round makes: the metagraph of the synthetic miners."""

    def __init__(self, validator: str, neurons: list[MinerNeuron]) -> None:
        self.graph = Metagraph(
            netuid=1,
            block=1,
            neurons=[
                NeuronInfo(uid=0, hotkey=validator, coldkey=validator, stake=1e6,
                           validator_permit=True),
                *(
                    NeuronInfo(uid=uid, hotkey=m.hotkey, coldkey=m.hotkey, stake=0.0,
                               axon_ip="127.0.0.1", axon_port=m.port, certificate=m.certificate)
                    for uid, m in enumerate(neurons, start=1)
                ),
            ],
        )  # fmt: skip

    async def metagraph(self) -> Metagraph:
        return self.graph


async def metered_round(config: RoundConfig) -> dict[str, Any]:
    """The validator's side: one round under the stage meter."""
    wallet = sp_core.Keypair.create_from_seed(os.urandom(32))
    chain = cast(ChainPort, _BenchChain(wallet.ss58_address, config.neurons))
    params = RoundParams(
        n=config.n, ttl_s=PATIENCE_S, call_timeout_s=PATIENCE_S, reveal_budget_s=PATIENCE_S,
        max_workers_per_miner=config.workers_per_miner, rows=config.rows, cols=config.cols,
    )  # fmt: skip
    plan = ChallengePlan(config.n, config.profile, PATIENCE_S, config.products)
    key = bytes.fromhex(config.draw_key)

    def plan_for(_: WorkerView) -> ChallengePlan:
        return plan

    def draw(spec: ChallengeSpec, _: Commitment) -> RevealRequest:
        return seeded_request(key, spec, s=config.rows, t=config.cols)

    store = await open_store(config.url)
    try:
        runner = RoundRunner(wallet, chain, store, params, plan_for=plan_for, draw=draw)
        meter = StageMeter()
        profiler = None
        if config.profile_path is not None:
            import cProfile

            profiler = cProfile.Profile()
        with instrumented(meter):
            cpu, loop_cpu, wall = time.process_time(), time.thread_time(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            report = await runner.run_round()
            if profiler is not None:
                profiler.disable()
            cpu = time.process_time() - cpu
            loop_cpu = time.thread_time() - loop_cpu
            wall = time.perf_counter() - wall
        if profiler is not None and config.profile_path is not None:
            profiler.dump_stats(config.profile_path)
        if store.dialect == "postgresql":
            # The parent samples the PostgreSQL backends' CPU: let it see the pool's last.
            await asyncio.sleep(3 * _SAMPLE_S)
    finally:
        await store.close()
    stages = dict(meter.cpu_s)
    on_loop = sum(stages.values()) - meter.off_loop_s
    stages["loop_other"] = loop_cpu - on_loop
    stages["other_threads"] = cpu - loop_cpu - meter.off_loop_s
    failed = Counter(
        o.reason or o.status.value
        for o in report.outcomes
        if o.status is not ChallengeStatus.PASSED
    )
    return {
        "challenges": len(report.outcomes),
        "passed": report.count(ChallengeStatus.PASSED),
        "failed": dict(failed),
        "unreachable": len(report.unreachable),
        "cpu_s": cpu,
        "wall_s": wall,
        "stages_s": stages,
        "reveal_bytes": meter.reveal_bytes,
        "answer_bytes": meter.answer_bytes,
        "answers": dict(meter.answers),
    }


async def _miners_main(config: MinersConfig) -> None:
    stop = asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    def announce(neurons: list[MinerNeuron]) -> None:
        print(json.dumps([m.model_dump() for m in neurons]), flush=True)

    await serve_miners(config, announce, stop)
    children = os.times()  # the proof builder's process, ended and waited for by now
    cpu_s = time.process_time() + children.children_user + children.children_system
    print(json.dumps({"cpu_s": cpu_s}), flush=True)


def main(argv: list[str]) -> None:
    configure_logging("WARNING")
    line = sys.stdin.readline()
    if argv[1] == "miners":
        asyncio.run(_miners_main(MinersConfig.model_validate_json(line)))
    elif argv[1] == "validator":
        result = asyncio.run(metered_round(RoundConfig.model_validate_json(line)))
        print(json.dumps(result), flush=True)
    else:
        raise SystemExit(f"unknown role {argv[1]!r}")


if __name__ == "__main__":
    main(sys.argv)
