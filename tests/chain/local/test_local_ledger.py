"""The devnet chain ledger against a real SQLite file, on a clock the test moves."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from byteleap.chain.local.state import ChainParams, Ledger, connect
from byteleap.chain.port import ChainError, ChainRejected

BLOCK = 1.0  # seconds per block, so clock seconds read as block numbers


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now

    def to_block(self, ledger: Ledger, block: int) -> None:
        self.now += (block - ledger.info().block) * BLOCK


def open_ledger(path: Path, clock: ManualClock, **params: object) -> Ledger:
    defaults: dict[str, object] = {
        "block_time_s": BLOCK, "tempo": 10, "max_uids": 8, "immunity_period": 5,
        "max_validators": 2, "weights_rate_limit": 3,
    }  # fmt: skip
    return Ledger(connect(path), ChainParams(**(defaults | params)), clock=clock)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def ledger(tmp_path: Path, clock: ManualClock) -> Iterator[Ledger]:
    chain = open_ledger(tmp_path / "chain.db", clock)
    yield chain
    chain.close()


def test_registration_gives_sequential_uids_and_is_idempotent(ledger: Ledger) -> None:
    assert [ledger.register(f"hk{i}", "ck") for i in range(3)] == [0, 1, 2]
    assert ledger.register("hk1", "ck") == 1
    with pytest.raises(ChainRejected) as err:
        ledger.register("hk1", "other-coldkey")
    assert err.value.reason == "coldkey_mismatch"
    assert [n.hotkey for n in ledger.metagraph().neurons] == ["hk0", "hk1", "hk2"]


def test_permits_go_to_top_stake(ledger: Ledger) -> None:
    for i in range(4):
        ledger.register(f"hk{i}", "ck")
    for hotkey, amount in (("hk0", 5.0), ("hk1", 50.0), ("hk2", 20.0), ("hk2", 1.0)):
        ledger.add_stake(hotkey, amount)
    graph = ledger.metagraph()
    assert [n.uid for n in graph.validators()] == [1, 2]
    assert graph.by_uid(2) is not None and graph.by_uid(2).stake == 21.0  # type: ignore[union-attr]
    with pytest.raises(ChainRejected) as err:
        ledger.add_stake("unregistered", 1.0)
    assert err.value.reason == "not_registered"


def test_set_weights_rules(ledger: Ledger, clock: ManualClock) -> None:
    for i in range(3):
        ledger.register(f"hk{i}", "ck")
    ledger.add_stake("hk0", 10.0)
    with pytest.raises(ChainRejected, match="permit") as err:
        ledger.set_weights("hk1", [2], [1.0], 0)
    assert err.value.reason == "no_validator_permit"
    with pytest.raises(ChainRejected) as err:
        ledger.set_weights("hk0", [1, 7], [1.0, 1.0], 0)
    assert err.value.reason == "unknown_uid"
    ledger.set_weights("hk0", [1, 2], [3.0, 1.0], 4)
    assert ledger.weights_of(0) == {1: 0.75, 2: 0.25}
    with pytest.raises(ChainRejected) as err:
        ledger.set_weights("hk0", [1], [1.0], 4)
    assert err.value.reason == "rate_limited"
    assert ledger.weights_of(0) == {1: 0.75, 2: 0.25}  # the refused write changed nothing
    clock.now += 3 * BLOCK
    ledger.set_weights("hk0", [2], [1.0], 5)
    assert ledger.weights_of(0) == {2: 1.0}


def test_epoch_runs_once_per_tempo_boundary(ledger: Ledger, clock: ManualClock) -> None:
    for i in range(3):
        ledger.register(f"hk{i}", "ck")
    ledger.add_stake("hk0", 10.0)
    ledger.set_weights("hk0", [1, 2], [3.0, 1.0], 0)
    assert ledger.metagraph().by_uid(1).incentive == 0  # type: ignore[union-attr]
    clock.to_block(ledger, 25)
    graph = ledger.metagraph()
    # Boundary 10 passed unobserved; it collapses into the epoch at 20 (same inputs).
    assert ledger.epoch_blocks() == [20]
    assert graph.by_uid(1).incentive == pytest.approx(0.75)  # type: ignore[union-attr]
    assert graph.by_uid(0).dividends == pytest.approx(1.0)  # type: ignore[union-attr]
    ledger.info()
    clock.to_block(ledger, 29)
    assert ledger.epoch_blocks() == [20]
    clock.to_block(ledger, 30)
    ledger.metagraph()
    ledger.metagraph()
    assert ledger.epoch_blocks() == [20, 30]


def test_restart_continues_the_same_chain(tmp_path: Path, clock: ManualClock) -> None:
    path = tmp_path / "chain.db"
    first = open_ledger(path, clock)
    first.register("hk0", "ck")
    first.add_stake("hk0", 3.0)
    clock.to_block(first, 12)
    before = first.metagraph()
    chain_id, epochs = first.chain_id, first.epoch_blocks()
    first.close()
    clock.now += 2 * BLOCK
    second = open_ledger(path, clock)
    after = second.metagraph()
    assert second.chain_id == chain_id
    assert after.block == before.block + 2
    assert after.neurons == before.neurons
    assert second.epoch_blocks() == epochs == [10]
    # A new block time re-anchors the clock: the block number does not jump.
    second.close()
    third = open_ledger(path, clock, block_time_s=0.5)
    assert third.info().block == after.block
    clock.now += 1.0
    assert third.info().block == after.block + 2
    third.close()
    with pytest.raises(ChainError) as err:
        open_ledger(path, clock, netuid=7)
    assert err.value.reason == "netuid_mismatch"


def test_full_subnet_replaces_lowest_incentive_past_immunity(
    tmp_path: Path, clock: ManualClock
) -> None:
    ledger = open_ledger(tmp_path / "chain.db", clock, max_uids=3, immunity_period=5)
    for i in range(3):
        ledger.register(f"hk{i}", "ck")
    ledger.add_stake("hk0", 10.0)
    ledger.set_weights("hk0", [0, 1, 2], [0.4, 0.35, 0.25], 0)
    with pytest.raises(ChainRejected) as err:
        ledger.register("late", "ck")  # full, and everyone is still immune
    assert err.value.reason == "subnet_full"
    clock.to_block(ledger, 10)  # past immunity, and the epoch sets incentives
    assert ledger.register("new1", "ck2") == 2  # uid 2 had the lowest incentive
    graph = ledger.metagraph()
    newcomer = graph.by_uid(2)
    assert newcomer is not None and newcomer.hotkey == "new1" and newcomer.incentive == 0
    assert newcomer.registered_at == graph.block
    assert ledger.weights_of(0) == {0: 0.4, 1: 0.35}  # weights for the old uid 2 are gone
    # The newcomer is immune, so the next registration prunes the next-lowest: uid 1.
    assert ledger.register("new2", "ck2") == 1
    assert {n.hotkey for n in ledger.metagraph().neurons} == {"hk0", "new1", "new2"}
    ledger.close()
