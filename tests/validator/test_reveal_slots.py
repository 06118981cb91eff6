"""A round keeps its reveals in flight within its bounds, the round's and each miner's, and every
honest challenge still passes; a miner that stalls its reveals holds only its own slots."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pytest

from byteleap.keys import ensure_wallet
from byteleap.proof import Reveal, RevealRequest
from byteleap.store import ChallengeStatus, Store
from byteleap.validator.rounds import RoundParams, RoundRunner
from validator.simulated_miners import (
    SimulatedDevice,
    SimulatedMiner,
    StaticChain,
    as_chain,
    simulated_worker,
)

N = 32


class CountingMiner(SimulatedMiner):
    """Answers each reveal after ``delay_s``; counts the reveals open at once, its own and all
    miners' together."""

    open_now: ClassVar[Counter[str]] = Counter()
    most: ClassVar[Counter[str]] = Counter()

    def __init__(self, *args: Any, delay_s: float = 0.05, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.delay_s = delay_s

    async def reveal(self, request: RevealRequest, n: int) -> Reveal:
        for key in (self.hotkey, "round"):
            self.open_now[key] += 1
            self.most[key] = max(self.most[key], self.open_now[key])
        try:
            await asyncio.sleep(self.delay_s)
            return await super().reveal(request, n)
        finally:
            for key in (self.hotkey, "round"):
                self.open_now[key] -= 1


@pytest.fixture
def wallet(tmp_path: Path) -> Any:
    return ensure_wallet("validator", path=tmp_path / "wallets")


async def test_reveals_stay_within_the_rounds_and_each_miners_bound(
    wallet: Any, sqlite_store: Store
) -> None:
    CountingMiner.open_now.clear()
    CountingMiner.most.clear()
    device = SimulatedDevice(1e15)
    miners = [
        CountingMiner(f"miner-{m}", [simulated_worker(m * 10 + i, device) for i in range(6)])
        for m in range(3)
    ]
    params = RoundParams(
        n=N, ttl_s=10.0, reveal_budget_s=10.0, reveals_in_flight=4, reveals_in_flight_per_miner=2
    )
    chain = StaticChain(miners, wallet.hotkey.ss58_address)
    report = await RoundRunner(
        wallet, as_chain(chain), sqlite_store, params, connect=chain.connect
    ).run_round()
    assert [o.status for o in report.outcomes] == [ChallengeStatus.PASSED] * 18
    assert CountingMiner.most["round"] == 4
    assert all(CountingMiner.most[m.hotkey] <= 2 for m in miners)


async def test_a_miner_that_stalls_its_reveals_holds_only_its_own_slots(
    wallet: Any, sqlite_store: Store
) -> None:
    CountingMiner.open_now.clear()
    CountingMiner.most.clear()
    device = SimulatedDevice(1e15)
    stalling = CountingMiner("stalls", [simulated_worker(i, device) for i in range(4)], delay_s=3)
    honest = CountingMiner("honest", [simulated_worker(10 + i, device) for i in range(6)])
    params = RoundParams(
        n=N, ttl_s=1.0, reveal_budget_s=1.5, reveals_in_flight=3, reveals_in_flight_per_miner=2
    )
    chain = StaticChain([stalling, honest], wallet.hotkey.ss58_address)
    report = await RoundRunner(
        wallet, as_chain(chain), sqlite_store, params, connect=chain.connect
    ).run_round()
    by_miner: dict[str, Counter[ChallengeStatus]] = {}
    for o in report.outcomes:
        by_miner.setdefault(o.miner_hotkey, Counter())[o.status] += 1
    assert by_miner["honest"] == Counter({ChallengeStatus.PASSED: 6})
    assert ChallengeStatus.PASSED not in by_miner["stalls"]


@pytest.mark.parametrize("per_challenge_s", [0.0, 0.2])
async def test_the_reveal_budget_grows_with_the_rounds_challenges(
    wallet: Any, sqlite_store: Store, per_challenge_s: float
) -> None:
    """Reveals read one at a time (one slot, 0.15 s each: a validator's single core) need
    2.7 s for 18 challenges. A fixed 0.5 s budget times most of them out through no fault of
    their miners; 0.2 s more per challenge of the round lets every one pass."""
    device = SimulatedDevice(1e15)
    miners = [
        CountingMiner(
            f"miner-{m}", [simulated_worker(m * 10 + i, device) for i in range(6)], delay_s=0.15
        )
        for m in range(3)
    ]
    params = RoundParams(
        n=N,
        ttl_s=1.0,
        reveal_budget_s=0.5,
        reveal_s_per_challenge=per_challenge_s,
        reveals_in_flight=1,
        reveals_in_flight_per_miner=1,
    )
    chain = StaticChain(miners, wallet.hotkey.ss58_address)
    report = await RoundRunner(
        wallet, as_chain(chain), sqlite_store, params, connect=chain.connect
    ).run_round()
    statuses = Counter(o.status for o in report.outcomes)
    if per_challenge_s:
        assert statuses == Counter({ChallengeStatus.PASSED: 18})
    else:
        assert statuses[ChallengeStatus.TIMED_OUT] >= 6, statuses
