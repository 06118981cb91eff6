"""Unrevealed products kept by a worker: GPU ones are dropped before the next challenge."""

from __future__ import annotations

from byteleap.proof import Profile, issue_challenge, solve
from byteleap.proof.backends import Product
from byteleap.proof.challenge import Solution
from byteleap.worker.node import drop_device_products


def _kept(device: str) -> Solution:
    solved = solve(issue_challenge(4, Profile.CPU_F64, now=0.0, ttl_s=10.0))
    product = Product(solved.product.tree, solved.product.row_bytes, device=device)
    return Solution(solved.spec, product, solved.compute_s)


def test_only_host_products_outlive_the_next_challenge() -> None:
    kept = {"on-host": _kept("cpu"), "on-gpu": _kept("cuda:0"), "also-gpu": _kept("cuda")}
    drop_device_products(kept)
    assert list(kept) == ["on-host"]
