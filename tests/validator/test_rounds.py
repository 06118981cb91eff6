"""Validator rounds end to end: chain, miner and workers as processes; the store on SQLite
and PostgreSQL; weights set on the chain."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from byteleap import metrics
from byteleap.chain.local.client import LocalChain
from byteleap.config import ValidatorSettings
from byteleap.net.messages import WorkerState
from byteleap.net.miner_client import MinerClient
from byteleap.store import (
    ChallengeStatus,
    NewChallenge,
    Store,
    get_challenge,
    latest_weights,
    list_workers,
    open_challenges,
    record_challenge,
    worker_identities,
)
from byteleap.validator.rounds import RoundParams, RoundRunner
from byteleap.validator.service import Validator
from network_fixtures import miner_neuron

pytestmark = pytest.mark.slow

PARAMS = RoundParams(n=128, ttl_s=6.0, call_timeout_s=10.0)


def settings(network: Any) -> ValidatorSettings:
    return ValidatorSettings(
        round_interval_s=1.0,
        weights_every_blocks=1,
        challenge_n=PARAMS.n,
        challenge_ttl_s=PARAMS.ttl_s,
        chain={"url": network.chain_url},
    )


async def test_a_round_records_every_outcome_then_weights_reach_the_chain(
    network: Any, workers: dict[str, str], store: Store
) -> None:
    async with LocalChain(network.chain_url, timeout_s=5) as chain:
        runner = RoundRunner(network.validator, chain, store, PARAMS)
        passed_before = (
            metrics.REGISTRY.get_sample_value(
                "byteleap_validator_challenges_total", {"status": "passed"}
            )
            or 0.0
        )
        report = await runner.run_round()
        passed_after = metrics.REGISTRY.get_sample_value(
            "byteleap_validator_challenges_total", {"status": "passed"}
        )
        assert passed_after == passed_before + 2
        by_worker = {o.worker_id: o for o in report.outcomes}
        assert by_worker[workers["w1"]].status is ChallengeStatus.PASSED
        assert by_worker[workers["w2"]].status is ChallengeStatus.PASSED
        assert by_worker[workers["w3"]].status is ChallengeStatus.TIMED_OUT  # the hung worker
        assert (by_worker[workers["w1"]].throughput or 0) > 0
        async with store.session() as s:
            assert await open_challenges(s) == []
            stored = {w.worker_key for w in await list_workers(s)}
            identities = await worker_identities(s, seen_since=0)
        assert set(workers.values()) <= stored
        # Each worker's enrolled key is recorded at the listing: the duplicate check reads it.
        keys = [i.public_key for i in identities]
        assert len(keys) == len(identities) >= 3 and all(len(k) == 64 for k in keys)
        assert len(set(keys)) == len(keys)

        validator = Validator(settings(network), network.validator, chain, store)
        assert await validator.set_weights_once() is True
        async with store.session() as s:
            latest = await latest_weights(s, accepted_only=True)
        assert latest is not None
        miner = (await chain.metagraph()).by_hotkey(network.miner_wallet.hotkey.ss58_address)
        assert miner is not None and latest.weights == {miner.uid: pytest.approx(1.0)}
        # Incentive follows at the next epoch.
        deadline = time.monotonic() + 30
        while (await chain.metagraph()).by_uid(miner.uid).incentive <= 0:  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "no incentive after the weights were set"
            await asyncio.sleep(0.2)


async def test_a_restart_closes_what_a_crash_left_open(
    network: Any, workers: dict[str, str], store: Store
) -> None:
    async with LocalChain(network.chain_url, timeout_s=5) as chain:
        await RoundRunner(network.validator, chain, store, PARAMS).run_round()
        async with store.session() as s:
            worker = (await list_workers(s))[0]
            now = int(time.time())
            await record_challenge(
                s,
                NewChallenge(
                    id="crashed-in-flight",
                    worker_id=worker.id,
                    miner_id=worker.miner_id,
                    profile="cpu-f64",
                    n=128,
                    seed="00" * 32,
                    issued_at=now,
                    deadline_at=now + 5,
                ),
            )
        await Validator(settings(network), network.validator, chain, store).resume()
        async with store.session() as s:
            record = await get_challenge(s, "crashed-in-flight")
            assert record.status is ChallengeStatus.ABANDONED
            assert await open_challenges(s) == []


async def test_an_unreachable_miner_costs_only_itself(
    network: Any, workers: dict[str, str], store: Store
) -> None:
    network.stop("miner")
    try:
        async with LocalChain(network.chain_url, timeout_s=5) as chain:
            report = await RoundRunner(network.validator, chain, store, PARAMS).run_round()
        assert report.outcomes == []
        assert network.miner_wallet.hotkey.ss58_address in report.unreachable
    finally:
        network.start_miner()


@pytest.mark.postgres
async def test_a_database_outage_pauses_rounds_and_they_resume(
    network: Any,
    workers: dict[str, str],
    pg_database: str,
    pg_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from byteleap.store import challenge_summaries, open_store, upgrade
    from store_fixtures import _admin

    await upgrade(pg_url)
    store = await open_store(pg_url)

    async def passed() -> int:
        async with store.session() as s:
            rows = await challenge_summaries(s, since=0, until=int(time.time()) + 10)
        return sum(r.counts.get(ChallengeStatus.PASSED, 0) for r in rows)

    async def wait_for(predicate: Any, what: str) -> None:
        deadline = time.monotonic() + 60
        while not await predicate():
            assert time.monotonic() < deadline, what
            await asyncio.sleep(0.3)

    config = settings(network).model_copy(update={"store_retry_s": 0.3})
    async with LocalChain(network.chain_url, timeout_s=5) as chain:
        validator = Validator(config, network.validator, chain, store)
        loop = asyncio.create_task(validator.rounds_forever())
        try:
            await wait_for(lambda: _gt(passed, 0), "no challenge passed before the outage")
            await _admin(f'ALTER DATABASE "{pg_database}" ALLOW_CONNECTIONS false')
            await _admin(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{pg_database}'"
            )
            deadline = time.monotonic() + 30
            while "store unavailable" not in caplog.text:
                assert time.monotonic() < deadline, "the outage was never noticed"
                await asyncio.sleep(0.2)
            assert not loop.done(), "the round loop died with the database"
            await _admin(f'ALTER DATABASE "{pg_database}" ALLOW_CONNECTIONS true')
            before = await passed()
            await wait_for(lambda: _gt(passed, before), "rounds did not resume")
        finally:
            await _admin(f'ALTER DATABASE "{pg_database}" ALLOW_CONNECTIONS true')
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
            await store.close()


async def _gt(value: Any, threshold: int) -> bool:
    return bool(await value() > threshold)


def test_validator_scores_command(
    network: Any, workers: dict[str, str], sqlite_url: str, tmp_path: Any
) -> None:
    import json
    import os
    import subprocess
    import sys

    async def one_round() -> None:
        from byteleap.store import open_store, upgrade

        # An earlier test of this module may have left an honest worker mid-challenge (its
        # round was cut off); this round must find both honest workers idle.
        await _until_idle(network, {workers["w1"], workers["w2"]})
        await upgrade(sqlite_url)
        store = await open_store(sqlite_url)
        try:
            async with LocalChain(network.chain_url, timeout_s=5) as chain:
                await RoundRunner(network.validator, chain, store, PARAMS).run_round()
        finally:
            await store.close()

    asyncio.run(one_round())
    config = tmp_path / "validator.toml"
    config.write_text(
        f'[validator.wallet]\nname = "validator"\npath = "{network.validator.path}"\n'
        f'[validator.chain]\nurl = "{network.chain_url}"\n'
        f'[validator.store]\nurl = "{sqlite_url}"\n'
    )
    command = [sys.executable, "-m", "byteleap.cli", "validator", "scores", "--config", str(config)]
    result = subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    miners = {m["hotkey"]: m for m in data["miners"]}
    miner = miners.pop(network.miner_wallet.hotkey.ss58_address)
    assert miner["challenge"] == 1.0 and miner["weight"] == 1.0
    # The registered outsider runs no miner: listed, with nothing earned.
    assert [m["weight"] for m in miners.values()] == [0.0]
    passes = {w["worker_id"]: w["successes"] for w in data["workers"]}
    assert passes[workers["w1"]] == 1 and passes[workers["w3"]] == 0
    table = subprocess.run(
        command, capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "200"}
    )
    assert table.returncode == 0 and workers["w1"] in table.stdout


async def _until_idle(network: Any, worker_ids: set[str]) -> None:
    neuron = await miner_neuron(network)
    async with MinerClient(network.validator, neuron) as client:
        deadline = time.monotonic() + 60
        while True:
            listed = (await client.workers()).workers
            if worker_ids <= {w.worker_id for w in listed if w.state is WorkerState.IDLE}:
                return
            assert time.monotonic() < deadline, [(w.worker_id, w.state) for w in listed]
            await asyncio.sleep(0.2)
