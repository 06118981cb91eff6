"""The protocol steps: issue (validator), solve and commit (worker), draw the reveal
(validator, after the commitment), answer it (worker). Verification is in ``verify``."""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from byteleap.proof.backends import Backend, compute_product
from byteleap.proof.errors import ProofError
from byteleap.proof.messages import (
    ChallengeSpec,
    Commitment,
    Reveal,
    RevealedRow,
    RevealRequest,
)
from byteleap.proof.product import Product
from byteleap.proof.profiles import Profile, value_bounds
from byteleap.proof.slices import slice_row

COMMITMENT_DOMAIN = b"byteleap/proof/v1/commitment\x00"
DEFAULT_ROWS = 8  # s
DEFAULT_COLS = 32  # t


def issue_challenge(
    n: int, profile: Profile, *, now: float, ttl_s: float, products: int = 1
) -> ChallengeSpec:
    """A fresh challenge with a 256-bit CSPRNG seed; refuses n the profile cannot make exact.

    ``products`` independent n×n products share the seed (``sizing.size_challenge`` picks n
    and products for a GPU); every one has the same bounds, so exactness is that of one.
    """
    value_bounds(profile, n)
    return ChallengeSpec(
        challenge_id=secrets.token_hex(16),
        seed=secrets.token_bytes(32),
        n=n,
        profile=profile,
        issued_at=now,
        deadline=now + ttl_s,
        products=products,
    )


@dataclass(frozen=True)
class Solution:
    """A worker's solved challenge: the committed tree and the time the compute took."""

    spec: ChallengeSpec
    product: Product
    compute_s: float

    @property
    def root(self) -> bytes:
        return self.product.tree.root


def solve(
    spec: ChallengeSpec, backend: Backend | str = Backend.NUMPY, device: str = "cpu"
) -> Solution:
    """Generate, multiply, encode, hash and build the tree; time all of it."""
    started = time.perf_counter()
    product = compute_product(spec, Backend(backend), device)
    _ = product.tree.root
    return Solution(spec, product, time.perf_counter() - started)


def signing_payload(challenge_id: str, root: bytes) -> bytes:
    """The canonical bytes a commitment signature covers."""
    cid = challenge_id.encode()
    return COMMITMENT_DOMAIN + len(cid).to_bytes(2, "big") + cid + root


def commit(solution: Solution, sign: Callable[[bytes], bytes]) -> Commitment:
    root = solution.root
    return Commitment(
        challenge_id=solution.spec.challenge_id,
        root=root,
        compute_s=solution.compute_s,
        signature=sign(signing_payload(solution.spec.challenge_id, root)),
    )


def draw_reveal(
    spec: ChallengeSpec,
    commitment: Commitment,
    *,
    s: int = DEFAULT_ROWS,
    t: int = DEFAULT_COLS,
    rng: random.Random | None = None,
) -> RevealRequest:
    """Draw s distinct rows (of all products·n) and t distinct columns (of n); call only once
    the commitment is in."""
    if commitment.challenge_id != spec.challenge_id:
        raise ProofError("commitment answers another challenge", reason="wrong_challenge")
    draw = rng if rng is not None else secrets.SystemRandom()
    return RevealRequest(
        challenge_id=spec.challenge_id,
        rows=tuple(draw.sample(range(spec.row_count), min(s, spec.row_count))),
        cols=tuple(draw.sample(range(spec.n), min(t, spec.n))),
    )


def answer_reveal(solution: Solution, request: RevealRequest) -> Reveal:
    if request.challenge_id != solution.spec.challenge_id:
        raise ProofError("reveal request for another challenge", reason="wrong_challenge")
    tree, n = solution.product.tree, solution.spec.n
    rows: list[RevealedRow] = []
    for i in request.rows:
        data, digests = slice_row(solution.product.row_bytes(i), n, request.cols)
        rows.append(RevealedRow(index=i, data=data, digests=digests, proof=tuple(tree.proof(i))))
    return Reveal(challenge_id=request.challenge_id, rows=tuple(rows))
