"""The pipelined CPU product commits to exactly the rows of A·B, however it is blocked."""

from __future__ import annotations

import itertools

import pytest

from byteleap.proof import Profile, issue_challenge, solve
from byteleap.proof import backends as backends_module
from byteleap.proof.backends import tree_of_rows
from byteleap.proof.cheats import exact_rows
from byteleap.proof.merkle import TreeKeys


@pytest.mark.parametrize("blocks", [1, 3, 4, 7])
@pytest.mark.parametrize("profile", list(Profile))
def test_blocked_pipeline_matches_the_whole_product(
    monkeypatch: pytest.MonkeyPatch, blocks: int, profile: Profile
) -> None:
    monkeypatch.setattr(backends_module, "PIPELINE_BLOCKS", blocks)
    spec = issue_challenge(455, profile, now=0.0, ttl_s=10.0)  # 455 rows: uneven blocks
    rows = exact_rows(spec)
    solution = solve(spec)
    assert solution.root == tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), rows).root
    for i in (0, 1, 113, 114, 454):
        assert solution.product.row_bytes(i) == rows[i].tobytes()


def test_row_blocks_cover_every_row_once() -> None:
    for n in (1, 63, 64, 65, 455, 2000):
        blocks = backends_module._row_blocks(n)
        assert blocks[0][0] == 0 and blocks[-1][1] == n
        assert all(hi == lo for (_, hi), (lo, _) in itertools.pairwise(blocks))
        assert all(hi > lo for lo, hi in blocks)
