"""The public network API (/v1/network/*) over a seeded store, on SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from byteleap.chain.port import ChainUnavailable, Metagraph, NeuronInfo
from byteleap.gateway.network import NetworkView
from byteleap.gateway.network.summary import availability_share, pass_rate, timeline
from byteleap.gateway.rest import create_rest_app
from byteleap.protocol.gpu_models import is_model_mismatch, measured_class
from byteleap.protocol.states import ChallengeStatus
from byteleap.store import Store, open_store, upgrade
from byteleap.store.network import SERVICES_TABLE, TimelineCell, service_states
from gateway.dashboard_seed import ALPHA, BETA, EXPECTED, GAMMA, TP, seed_network
from gateway.live import tenants

VALIDATOR = "5Validator" + "v" * 38


def metagraph() -> Metagraph:
    neurons = [
        NeuronInfo(uid=0, hotkey=VALIDATOR, coldkey="c", stake=1000.0, validator_permit=True),
        *(
            NeuronInfo(uid=uid, hotkey=hotkey, coldkey="c", stake=0.0)
            for uid, hotkey in ((1, ALPHA), (2, BETA), (3, GAMMA))
        ),
    ]
    return Metagraph(netuid=1, block=4242, neurons=neurons)


async def _metagraph() -> Metagraph:
    return metagraph()


@pytest.fixture
async def seeded(store: Store) -> tuple[Store, float]:
    now = float(int(time.time()))
    await seed_network(store, now)
    return store, now


@pytest.fixture
async def api(seeded: tuple[Store, float]) -> AsyncIterator[httpx.AsyncClient]:
    store, now = seeded
    view = NetworkView(store, metagraph=_metagraph, clock=lambda: now)
    app = create_rest_app(tenants(), network=view)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://gw") as c:
        yield c


async def _get(api: httpx.AsyncClient, path: str, **params: Any) -> dict[str, Any]:
    response = await api.get(path, params=params)  # no Authorization header: public
    assert response.status_code == 200, response.text
    return dict(response.json())


async def _has_services_table(store: Store) -> bool:
    async with store.session() as s:
        conn = await s.connection()
        return bool(await conn.run_sync(lambda c: sa.inspect(c).has_table(SERVICES_TABLE)))


async def test_overview_counts_the_seeded_network(
    api: httpx.AsyncClient, seeded: tuple[Store, float]
) -> None:
    o = await _get(api, "/v1/network/overview")
    e = EXPECTED
    assert o["chain"] == {"netuid": 1, "block": 4242, "neurons": 4, "validators": 1}
    assert (o["miners"], o["workers"], o["workers_online"]) == (e.miners, e.workers, 3)
    assert o["workers_by_state"] == {"idle": 2, "busy": 1, "offline": 1}
    assert (o["gpus"], o["gpus_by_model"]) == (e.gpus, dict(e.gpus_by_model))
    ch = o["challenges"]
    assert (ch["passed"], ch["failed"], ch["wrong"]) == (e.passed, e.failed, e.wrong)
    assert (ch["in_flight"], ch["abandoned"], ch["window_s"]) == (1, 1, 180 * 60)
    assert ch["pass_rate"] == pytest.approx(e.passed / (e.passed + e.failed))
    assert o["availability"] == pytest.approx(e.availability)
    assert o["jobs"] == dict(e.jobs)
    assert o["leases"] == dict(e.leases)
    assert o["services"] == ({} if await _has_services_table(seeded[0]) else None)


async def test_miners_with_their_workers_and_newest_weights(api: httpx.AsyncClient) -> None:
    listing = await _get(api, "/v1/network/miners")
    miners = {m["hotkey"]: m for m in listing["miners"]}
    alpha, beta, gamma = miners[ALPHA], miners[BETA], miners[GAMMA]
    assert (alpha["uid"], alpha["workers"], alpha["gpus"]) == (1, 2, 3)
    assert (alpha["passed"], alpha["failed"], alpha["weight"]) == (9, 1, 0.75)
    assert (beta["passed"], beta["failed"], beta["weight"]) == (3, 1, 0.25)
    assert (gamma["passed"], gamma["failed"], gamma["weight"]) == (0, 2, 0.0)
    assert gamma["pass_rate"] == 0.0 and gamma["workers_online"] == 0
    workers = {w["worker_key"]: w for w in alpha["worker_list"]}
    assert workers["a-gpu2"]["state"] == "busy"
    assert [g["model"] for g in workers["a-gpu2"]["gpus"]] == ["H100", "H100"]
    assert workers["a-gpu1"]["mean_throughput"] == pytest.approx(TP)
    assert workers["a-gpu1"]["availability"] == 1.0
    (c_gpu,) = gamma["worker_list"]
    assert c_gpu["online"] is False and c_gpu["availability"] == pytest.approx(3 / 13)


async def test_each_worker_shows_its_gpu_claim_beside_what_it_measured(
    api: httpx.AsyncClient,
) -> None:
    listing = await _get(api, "/v1/network/miners")
    workers = {w["worker_key"]: w for m in listing["miners"] for w in m["worker_list"]}
    fields = (
        "claimed_gpu_model",
        "measured_gpu_class",
        "measured_throughput",
        "gpu_model_mismatch",
    )

    def shown(key: str) -> tuple[Any, ...]:
        return tuple(workers[key][f] for f in fields)

    # What its passes measure is inside an H100's band, so the claim stands.
    measured = measured_class(TP)
    assert measured is not None and not is_model_mismatch("H100", TP)
    assert shown("a-gpu1") == ("H100", measured.name, pytest.approx(TP), False)
    assert shown("b-cpu") == (None, None, pytest.approx(TP), None)  # no GPU: no class
    assert shown("c-gpu") == ("A100", None, None, None)  # never passed: nothing measured


async def test_challenge_history_slots_and_recent(
    api: httpx.AsyncClient, seeded: tuple[Store, float]
) -> None:
    _, now = seeded
    three = await _get(api, "/v1/network/challenges", hours=3, points=12, limit=5)
    assert three["step_s"] == 900 and len(three["timeline"]) == 12
    assert sum(p["passed"] for p in three["timeline"]) == EXPECTED.passed
    assert sum(p["failed"] for p in three["timeline"]) == EXPECTED.failed
    assert three["timeline"][-1]["start"] <= now < three["timeline"][-1]["start"] + 900
    six = await _get(api, "/v1/network/challenges", hours=6, points=12, limit=5)
    assert sum(p["passed"] for p in six["timeline"]) == EXPECTED.passed + 1  # the old pass
    recent = three["recent"]
    assert len(recent) == 5
    issued = [c["issued_at"] for c in recent]
    assert issued == sorted(issued, reverse=True)
    assert recent[0]["status"] == "passed" and recent[0]["miner_hotkey"] == ALPHA
    assert "seed" not in recent[0] and "root" not in recent[0]


async def test_scores_over_time_rank_the_cheater_last(api: httpx.AsyncClient) -> None:
    history = await _get(api, "/v1/network/scores", points=3)
    snapshots = history["snapshots"]
    assert len(snapshots) == 3
    assert [s["at"] for s in snapshots] == sorted(s["at"] for s in snapshots)
    latest = {m["hotkey"]: m for m in snapshots[-1]["miners"]}
    assert latest[ALPHA]["challenge"] == 1.0  # the best miner, normalised
    assert 0 < latest[BETA]["final"] < latest[ALPHA]["final"]
    assert latest[GAMMA]["final"] == 0.0 and latest[GAMMA]["weight"] == 0.0
    assert sum(m["weight"] for m in latest.values()) == pytest.approx(1.0)


async def test_weights_oldest_first_by_hotkey(api: httpx.AsyncClient) -> None:
    sets = (await _get(api, "/v1/network/weights"))["sets"]
    assert len(sets) == EXPECTED.weight_sets
    assert [s["block"] for s in sets] == [100, 120, 140]
    assert sets[-1]["weights"] == dict(EXPECTED.newest_weights)
    assert all(s["accepted"] for s in sets)


async def test_no_tenant_data_leaks(api: httpx.AsyncClient) -> None:
    for path in ("overview", "miners", "challenges", "scores", "weights"):
        text = (await api.get(f"/v1/network/{path}")).text
        assert "acme" not in text and "job-0" not in text and "lease-0" not in text


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("challenges", {"points": 0}),
        ("challenges", {"hours": 10_000}),
        ("challenges", {"limit": 100_000}),
        ("scores", {"points": 25}),
        ("weights", {"limit": 0}),
    ],
)
async def test_bounds_are_422(sqlite_url: str, path: str, params: dict[str, Any]) -> None:
    await upgrade(sqlite_url)
    store = await open_store(sqlite_url)
    app = create_rest_app(tenants(), network=NetworkView(store))
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://g") as c:
            response = await c.get(f"/v1/network/{path}", params=params)
    finally:
        await store.close()
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


async def test_without_a_chain_scores_come_from_the_store(seeded: tuple[Store, float]) -> None:
    store, now = seeded

    async def down() -> Metagraph:
        raise ChainUnavailable("no chain")

    view = NetworkView(store, metagraph=down, clock=lambda: now)
    overview = await view.overview()
    assert overview.chain.block is None and overview.miners == EXPECTED.miners
    latest = (await view.scores(points=1)).snapshots[-1]
    assert {m.hotkey for m in latest.miners} == {ALPHA, BETA, GAMMA}
    assert max(m.final for m in latest.miners) == 1.0


async def test_answers_are_cached_for_cache_s(seeded: tuple[Store, float]) -> None:
    store, now = seeded
    clock = [now]
    view = NetworkView(store, clock=lambda: clock[0], cache_s=5.0)
    first = await view.overview()
    async with store.session() as s:
        await s.execute(sa.text("DELETE FROM challenges"))
    assert (await view.overview()).challenges.passed == first.challenges.passed
    clock[0] += 6.0
    assert (await view.overview()).challenges.passed == 0


async def test_service_states_reads_a_services_table_if_there_is_one(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    try:
        async with AsyncSession(engine) as s:
            assert await service_states(s) is None
            await s.execute(sa.text("CREATE TABLE services (id TEXT PRIMARY KEY, state TEXT)"))
            rows = [("s1", "running"), ("s2", "running"), ("s3", "deploying")]
            insert = sa.text("INSERT INTO services VALUES (:id, :state)")
            for sid, state in rows:
                await s.execute(insert, {"id": sid, "state": state})
            assert await service_states(s) == {"running": 2, "deploying": 1}
    finally:
        await engine.dispose()


def test_summary_arithmetic() -> None:
    assert pass_rate(0, 0) is None and pass_rate(3, 1) == 0.75
    share = availability_share(5, first_seen_bucket=100, since_bucket=0, now_bucket=109)
    assert share == 0.5
    assert availability_share(5, first_seen_bucket=200, since_bucket=0, now_bucket=109) is None
    assert availability_share(99, first_seen_bucket=0, since_bucket=100, now_bucket=109) == 1.0
    cells = [
        TimelineCell(0, ChallengeStatus.PASSED, 2),
        TimelineCell(2, ChallengeStatus.TIMED_OUT, 1),
        TimelineCell(2, ChallengeStatus.ISSUED, 4),
        TimelineCell(9, ChallengeStatus.PASSED, 7),  # outside: dropped
    ]
    points = timeline(cells, since=1000, step_s=10, points=3)
    assert [(p.start, p.passed, p.failed, p.other) for p in points] == [
        (1000, 2, 0, 0),
        (1010, 0, 0, 0),
        (1020, 0, 1, 4),
    ]
