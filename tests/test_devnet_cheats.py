"""How `devnet --cheaters N` maps N to cheats, and the weight shares it reports (fast)."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from byteleap.devnet.cheaters import weight_shares
from byteleap.devnet.state import (
    CHEATS,
    DevnetError,
    DevnetOptions,
    DevnetState,
    behaviour_of,
    cheats_of,
    workers_of,
)
from byteleap.devnet.summary import DevnetSummary, MinerSummary
from byteleap.devnet.supervisor import Supervisor
from byteleap.proof.cheats import MinerCheat
from byteleap.worker.behaviours import Behaviour


def test_eight_cheaters_cover_every_miner_level_cheat_and_nine_cover_all() -> None:
    eight = cheats_of(DevnetOptions(cheaters=8))
    assert len(eight) == len(set(eight)) == 8
    assert {c.value for c in MinerCheat} <= set(eight)
    assert set(cheats_of(DevnetOptions(cheaters=9))) == set(CHEATS)
    assert cheats_of(DevnetOptions()) == ()
    assert cheats_of(DevnetOptions(cheaters=1)) == ("lazy",)


def test_named_cheats_replace_the_count_and_unknown_ones_are_refused() -> None:
    assert cheats_of(DevnetOptions(cheaters=3, cheats=("wash-lease",))) == ("wash-lease",)
    with pytest.raises(DevnetError, match="no such cheat: fast-math"):
        cheats_of(DevnetOptions(cheats=("lazy", "fast-math")))


def test_each_cheaters_workers_run_a_real_behaviour(tmp_path: Path) -> None:
    state = DevnetState(DevnetOptions(workers_per_miner=2), Supervisor(tmp_path), Console())
    state.cheats = {name: name for name in CHEATS}
    for cheat in CHEATS:
        Behaviour(behaviour_of(state, cheat))  # every one is a worker behaviour
    assert behaviour_of(state, "shared-hotkeys") == "honest"  # its cheat is the shared keys
    assert behaviour_of(state, "miner1") == "honest"
    assert workers_of(state, "multiplex") == 4 and workers_of(state, "lazy") == 2


def test_weight_shares_are_of_the_miners_weights_and_cheaters_add_up() -> None:
    summary = DevnetSummary(
        miners=[
            MinerSummary(uid=1, hotkey="a", weight=0.3),
            MinerSummary(uid=2, hotkey="b", weight=0.1, cheater="multiplex"),
            MinerSummary(uid=3, hotkey="c", weight=0.0, cheater="lazy"),
        ]
    )
    weight_shares(summary)
    assert [m.weight_share for m in summary.miners] == [0.75, 0.25, 0.0]
    assert summary.cheater_share == 0.25
    honest_only = DevnetSummary(miners=[MinerSummary(uid=1, hotkey="a", weight=0.0)])
    weight_shares(honest_only)
    assert honest_only.cheater_share is None and honest_only.miners[0].weight_share == 0.0
