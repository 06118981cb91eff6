"""The network side of the devnet: keys, chain, miners, workers, validator, weights."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import asyncpg
import bittensor as bt
import sqlalchemy as sa

from byteleap.chain.local.client import LocalChain
from byteleap.chain.port import NeuronInfo
from byteleap.config import MinerSettings, load_settings
from byteleap.devnet.cheaters import (
    flagged_workers,
    share_worker_keys,
    weight_shares,
    worker_args,
    worker_home,
)
from byteleap.devnet.state import (
    CHALLENGE_TTL_S,
    CHEATERS_CHALLENGE_TTL_S,
    TWIN_SUFFIX,
    VALIDATOR_STAKE,
    DevnetError,
    DevnetState,
    behaviour_of,
    chain_of,
    cheats_of,
    check_children,
    free_port,
    idle_workers_expected,
    miner_names,
    workers_of,
)
from byteleap.devnet.summary import (
    ChainSummary,
    MinerSummary,
    NeuronRow,
)
from byteleap.errors import ByteleapError
from byteleap.keys import create_wallet
from byteleap.miner.runner import ledger_for
from byteleap.net.miner_client import MinerCallError, MinerClient
from byteleap.net.tls import load_or_create_identity
from byteleap.scoring import ScoringParams
from byteleap.store import StoreError, latest_weights, open_store, upgrade
from byteleap.store.validations import penalised_miners
from byteleap.validator.scores import ScoreResult, compute_scores

log = logging.getLogger(__name__)


async def step_keys(state: DevnetState) -> None:
    options = state.options
    names = ["validator"] + [f"miner{i}" for i in range(1, options.miners + 1)]
    for i, cheat in enumerate(cheats_of(options)):
        name = f"cheater{i + 1}"
        names.append(name)
        state.cheats[name] = cheat
        if cheat == "shared-hotkeys":  # one box under two hotkeys
            twin = name + TWIN_SUFFIX
            names.append(twin)
            state.cheats[twin] = cheat
            state.twins[twin] = name
    for name in names:
        info = create_wallet(name, "default", path=state.wallet_dir)
        state.wallets[name] = bt.Wallet(name, "default", path=str(state.wallet_dir))
        state.roles[info.hotkey_ss58 or ""] = "validator" if name == "validator" else "miner"


async def step_chain(state: DevnetState) -> None:
    options = state.options
    port = options.chain_port or free_port()
    config = options.home / "chain.toml"
    config.write_text(
        "[chain]\n"
        f'host = "127.0.0.1"\nport = {port}\n'
        f'db_path = "{(options.home / "chain.db").resolve()}"\n'
        f"block_time_s = {options.block_time_s}\ntempo = {options.tempo}\n"
        "max_validators = 1\nimmunity_period = 100\nweights_rate_limit = 2\n"
    )
    child = state.supervisor.start("chain", "chain", "serve", "--config", str(config))
    state.chain_url = f"http://127.0.0.1:{port}"
    state.chain = LocalChain(state.chain_url, netuid=1, timeout_s=5.0)
    deadline = time.monotonic() + options.startup_timeout_s
    while True:
        try:
            await state.chain.current_block()
            return
        except ByteleapError:
            if not child.alive or time.monotonic() > deadline:
                raise DevnetError(f"chain did not start; its log:\n{child.tail()}") from None
            await asyncio.sleep(0.1)


async def step_register(state: DevnetState) -> None:
    chain = chain_of(state)
    await chain.register(state.wallets["validator"])
    await chain.add_stake(state.wallets["validator"], VALIDATOR_STAKE)
    await _wait_for_permit(state)


async def step_miners(state: DevnetState) -> None:
    """Each miner registers itself and publishes its axon with its TLS key."""
    for name in miner_names(state):
        port = free_port()
        state.miner_ports[name] = port
        config = write_miner_config(state, name, port)
        state.supervisor.start(name, "miner", "run", "--config", str(config))
    deadline = time.monotonic() + state.options.startup_timeout_s
    hotkeys = {state.wallets[name].hotkey.ss58_address for name in miner_names(state)}
    while True:
        metagraph = await chain_of(state).metagraph()
        served = {n.hotkey for n in metagraph.neurons if n.hotkey in hotkeys and n.certificate}
        if served == hotkeys:
            return
        check_children(state)
        if time.monotonic() > deadline:
            raise DevnetError(f"miners without an axon: {sorted(hotkeys - served)}")
        await asyncio.sleep(0.2)


def write_miner_config(state: DevnetState, name: str, port: int) -> Path:
    home = (state.options.home / name).resolve()
    config = state.options.home / f"{name}.toml"
    config.write_text(
        f'[miner]\nport = {port}\nhome = "{home}"\n'
        f"heartbeat_s = {state.options.heartbeat_s}\npermit_cache_s = 1\n"
        f'[miner.wallet]\nname = "{name}"\nhotkey = "default"\n'
        f'path = "{state.wallet_dir.resolve()}"\n'
        f'[miner.chain]\nurl = "{state.chain_url}"\n'
    )
    return config


async def step_workers(state: DevnetState) -> None:
    """Enroll each miner's CPU workers with one-time tokens and wait until they are idle."""
    share_worker_keys(state)
    for name in miner_names(state):
        settings = load_settings(MinerSettings, state.options.home / f"{name}.toml")
        pin = load_or_create_identity(settings.state_dir).public_key.hex()
        ledger = ledger_for(settings)
        try:
            tokens = [ledger.new_token(pin, 600) for _ in range(workers_of(state, name))]
        finally:
            ledger.close()
        url = f"wss://127.0.0.1:{state.miner_ports[name]}/v1/worker"
        for index, token in enumerate(tokens, start=1):
            home = worker_home(state, name, index)
            state.supervisor.start(
                f"{name}-worker{index}",
                "worker",
                "--miner",
                url,
                "--token",
                token,
                "--home",
                str(home),
                "--behaviour",
                behaviour_of(state, name),
                *worker_args(state, name),
                may_exit=state.cheats.get(name) == "wash-lease",
            )
    await wait_for_workers(state)


async def wait_for_workers(state: DevnetState) -> None:
    """Until every miner lists its workers idle (after enrollment, or a worker's restart)."""
    metagraph = await chain_of(state).metagraph()
    validator = state.wallets["validator"]
    deadline = time.monotonic() + state.options.startup_timeout_s
    for name in miner_names(state):
        neuron = metagraph.by_hotkey(state.wallets[name].hotkey.ss58_address)
        assert neuron is not None
        while True:
            idle = await _idle_workers(validator, neuron)
            state.workers_online[neuron.hotkey] = idle
            if idle >= idle_workers_expected(state, name):
                break
            check_children(state)
            if time.monotonic() > deadline:
                raise DevnetError(f"{name} has {idle} idle workers")
            await asyncio.sleep(0.2)


async def _idle_workers(validator: bt.Wallet, neuron: NeuronInfo) -> int:
    """Idle workers the miner lists now; 0 while it cannot be reached."""
    try:
        async with MinerClient(validator, neuron, timeout_s=5) as client:
            return sum(1 for w in (await client.workers()).workers if w.state == "idle")
    except MinerCallError:
        return 0


async def _admin(url: str, *statements: str) -> None:
    """Run ``statements`` on ``url``'s server through its ``postgres`` database."""
    target = sa.make_url(url)
    try:
        admin = await asyncpg.connect(
            host=target.host or "127.0.0.1",
            port=target.port or 5432,
            user=target.username or "postgres",
            password=target.password,
            database="postgres",
            timeout=5,
        )
    except (OSError, asyncpg.PostgresError) as exc:
        raise DevnetError(
            f"PostgreSQL at {target.host}:{target.port} is not usable: {exc}"
        ) from exc
    try:
        for statement in statements:
            await admin.execute(statement)
    finally:
        await admin.close()


async def fresh_postgres(url: str) -> str:
    """Drop and create ``url``'s database and migrate it: the devnet starts from nothing, as
    it does on SQLite."""
    name = sa.make_url(url).database
    if not name or not name.replace("_", "").isalnum():
        raise DevnetError(f"the devnet's PostgreSQL database name must be a plain word: {name!r}")
    await _admin(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    await upgrade(url)
    return url


async def drop_postgres(url: str) -> None:
    """Drop ``url``'s database (what :func:`fresh_postgres` made)."""
    await _admin(url, f'DROP DATABASE IF EXISTS "{sa.make_url(url).database}" WITH (FORCE)')


async def step_validator(state: DevnetState) -> None:
    """Start the validator and wait until every worker has passed ``rounds`` challenges."""
    options = state.options
    if options.store == "postgres":
        state.store_url = await fresh_postgres(options.postgres_url)
    else:
        state.store_url = f"sqlite+aiosqlite:///{(options.home / 'validator.db').resolve()}"
    config = options.home / "validator.toml"
    state.validator_metrics_port = free_port()
    ttl = CHEATERS_CHALLENGE_TTL_S if state.cheats else CHALLENGE_TTL_S
    config.write_text(
        f"[validator]\nround_interval_s = {options.round_interval_s}\n"
        "weights_interval_s = 2\nweights_every_blocks = 4\n"
        f"challenge_n = {options.challenge_n}\nchallenge_ttl_s = {ttl:g}\n"
        f"metrics_port = {state.validator_metrics_port}\n"
        f'[validator.wallet]\nname = "validator"\npath = "{state.wallet_dir.resolve()}"\n'
        f'[validator.chain]\nurl = "{state.chain_url}"\n'
        f'[validator.store]\nurl = "{state.store_url}"\n'
    )
    state.supervisor.start("validator", "validator", "run", "--config", str(config))
    expected = options.miners * options.workers_per_miner
    deadline = time.monotonic() + options.startup_timeout_s + options.rounds * 30
    while True:
        try:
            result = await score_now(state)
        except StoreError:  # the validator has not created and migrated its store yet
            result = None
        done = [
            w
            for w in (result.board.workers if result else ())
            if w.successes + w.failures >= options.rounds
        ]
        if result is not None and len(done) >= expected:
            state.scores = result
            return
        check_children(state)
        if time.monotonic() > deadline:
            raise DevnetError(f"only {len(done)} of {expected} workers finished the rounds")
        state.progress(f"validator: {len(done)}/{expected} workers through {options.rounds} rounds")
        await asyncio.sleep(1.0)


async def score_now(state: DevnetState) -> ScoreResult:
    metagraph = await chain_of(state).metagraph()
    store = await open_store(state.store_url)
    try:
        validator = state.wallets["validator"].hotkey.ss58_address
        params = ScoringParams(round_interval_s=state.options.round_interval_s)
        return await compute_scores(
            store, metagraph, now=time.time(), params=params, exclude={validator}
        )
    finally:
        await store.close()


async def step_weights(state: DevnetState) -> None:
    """Wait until the validator's weights are accepted and an epoch has paid incentive."""
    deadline = time.monotonic() + state.options.startup_timeout_s
    miners = {state.wallets[name].hotkey.ss58_address for name in miner_names(state)}
    while True:
        store = await open_store(state.store_url)
        try:
            async with store.session() as s:
                latest = await latest_weights(s, accepted_only=True)
        finally:
            await store.close()
        metagraph = await chain_of(state).metagraph()
        paid = [n for n in metagraph.neurons if n.hotkey in miners and n.incentive > 0]
        fresh = latest is not None and latest.computed_at >= state.weights_after
        if latest is not None and fresh and paid:
            state.accepted_weights = latest.weights
            state.scores = await score_now(state)
            return
        check_children(state)
        if time.monotonic() > deadline:
            raise DevnetError("weights were not set and paid within the time limit")
        await asyncio.sleep(0.5)


async def _wait_for_permit(state: DevnetState) -> None:
    """Permits are assigned at the next epoch; wait for the validator's."""
    chain = chain_of(state)
    hotkey = state.wallets["validator"].hotkey.ss58_address
    deadline = time.monotonic() + state.options.startup_timeout_s
    while time.monotonic() < deadline:
        neuron = (await chain.metagraph()).by_hotkey(hotkey)
        if neuron is not None and neuron.validator_permit:
            return
        await asyncio.sleep(state.options.block_time_s)
    raise DevnetError("validator did not receive a validator permit")


async def step_metagraph(state: DevnetState) -> None:
    metagraph = await chain_of(state).metagraph()
    state.summary.chain = ChainSummary(block=metagraph.block, neurons=len(metagraph.neurons))
    store = await open_store(state.store_url)
    try:
        async with store.session() as s:
            wrong_output = await penalised_miners(s, since=0, until=time.time())
    finally:
        await store.close()
    duplicated = await flagged_workers(state, metagraph)
    for neuron in sorted(metagraph.neurons, key=lambda n: n.uid):
        role = state.roles.get(neuron.hotkey, "unknown")
        state.summary.neurons.append(
            NeuronRow(
                uid=neuron.uid,
                hotkey=neuron.hotkey,
                role=role,
                stake=neuron.stake,
                validator_permit=neuron.validator_permit,
            )
        )
        if role == "miner":
            summary = _miner_summary(state, neuron.uid, neuron.hotkey)
            summary.wrong_output = neuron.hotkey in wrong_output
            summary.duplicated = duplicated.get(neuron.hotkey, 0)
            state.summary.miners.append(summary)
    weight_shares(state.summary)


def _miner_summary(state: DevnetState, uid: int, hotkey: str) -> MinerSummary:
    cheater = next(
        (
            cheat
            for name, cheat in state.cheats.items()
            if state.wallets[name].hotkey.ss58_address == hotkey
        ),
        None,
    )
    summary = MinerSummary(
        uid=uid,
        hotkey=hotkey,
        cheater=cheater,
        workers_online=state.workers_online.get(hotkey, 0),
    )
    if state.scores is None:
        return summary
    workers = [w for w in state.scores.board.workers if w.miner_hotkey == hotkey]
    miner = state.scores.board.miner(hotkey)
    return summary.model_copy(
        update={
            "challenges_passed": sum(w.successes for w in workers),
            "challenges_failed": sum(w.failures for w in workers),
            "challenge_score": round(miner.challenge, 6),
            "lease_score": round(miner.lease, 6),
            "weight": round(state.accepted_weights.get(uid, 0.0), 6),
        }
    )
