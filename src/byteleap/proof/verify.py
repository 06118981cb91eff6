"""Validator-side verification of a reveal: a pure function of the messages and a clock.

Checks run cheapest first: challenge identity, lateness, signature, replay, shape, Merkle
proofs (each row's digest rebuilt from its slice, ``proof.slices``), then the sampled entries
C[i, j] recomputed from the seed (only the s rows of A and t columns of B are generated) and
compared bit for bit. In a challenge of several products the tree holds products·n rows;
global row r is row r mod n of product r div n, recomputed from that product's A and B.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from byteleap.proof.challenge import signing_payload
from byteleap.proof.matrices import cols_of_b, rows_of_a
from byteleap.proof.merkle import TreeKeys, leaf_hash, root_from_proof
from byteleap.proof.messages import (
    ChallengeSpec,
    Commitment,
    Reveal,
    RevealRequest,
    Verdict,
    VerdictReason,
)
from byteleap.proof.slices import slice_digest, slice_entries, slice_sizes

SignatureCheck = Callable[[bytes, bytes], bool]  # (payload, signature) -> valid


class ReplayGuard:
    """Remembers recent commitment roots; a root seen once is never accepted again.

    Bounded: the oldest roots are forgotten past ``capacity`` (an old root also belongs to an
    expired challenge, which the challenge id and deadline already refuse).
    """

    def __init__(self, capacity: int = 1 << 16) -> None:
        self._capacity = capacity
        self._seen: OrderedDict[bytes, None] = OrderedDict()

    def __contains__(self, root: object) -> bool:
        return root in self._seen

    def check_and_record(self, root: bytes) -> bool:
        """True when ``root`` is new (and records it), False when it was seen before."""
        if root in self._seen:
            return False
        self._seen[root] = None
        if len(self._seen) > self._capacity:
            self._seen.popitem(last=False)
        return True


def verify(
    spec: ChallengeSpec,
    commitment: Commitment,
    request: RevealRequest,
    reveal: Reveal,
    *,
    now: float,
    verify_signature: SignatureCheck,
    replay_guard: ReplayGuard | None = None,
) -> Verdict:
    """The verdict on one challenge. ``now`` is when the commitment arrived."""
    cid = spec.challenge_id
    if {commitment.challenge_id, request.challenge_id, reveal.challenge_id} != {cid}:
        return Verdict.failed(VerdictReason.WRONG_CHALLENGE, "messages name another challenge")
    if now > spec.deadline:
        return Verdict.failed(VerdictReason.LATE, f"{now - spec.deadline:.3f}s past deadline")
    if not verify_signature(signing_payload(cid, commitment.root), commitment.signature):
        return Verdict.failed(VerdictReason.BAD_SIGNATURE, "commitment signature does not verify")
    if replay_guard is not None and not replay_guard.check_and_record(commitment.root):
        return Verdict.failed(VerdictReason.REPLAYED, "commitment root seen before")
    shape = _check_shape(spec, request, reveal)
    if shape is not None:
        return shape
    keys = TreeKeys.for_challenge(cid)
    for row in reveal.rows:
        digest = slice_digest(spec.n, request.cols, row.data, row.digests)
        if digest is None:  # _check_shape has checked the lengths
            return Verdict.failed(VerdictReason.WRONG_SHAPE, "slice of the wrong size")
        leaf = leaf_hash(keys, row.index, digest)
        if root_from_proof(keys, row.index, spec.row_count, leaf, row.proof) != commitment.root:
            return Verdict.failed(
                VerdictReason.BAD_PROOF, "proof does not reach root", row=row.index
            )
    return _check_values(spec, request, reveal)


def _check_shape(spec: ChallengeSpec, request: RevealRequest, reveal: Reveal) -> Verdict | None:
    n = spec.n
    if tuple(row.index for row in reveal.rows) != request.rows:
        return Verdict.failed(VerdictReason.WRONG_SHAPE, "revealed rows differ from the request")
    if any(not 0 <= i < spec.row_count for i in request.rows):
        return Verdict.failed(VerdictReason.WRONG_SHAPE, "requested row outside the matrix")
    if any(not 0 <= j < n for j in request.cols):
        return Verdict.failed(VerdictReason.WRONG_SHAPE, "requested column outside the matrix")
    data_bytes, digest_bytes = slice_sizes(n, request.cols)
    for row in reveal.rows:
        if (len(row.data), len(row.digests)) != (data_bytes, digest_bytes):
            return Verdict.failed(
                VerdictReason.WRONG_SHAPE,
                f"slice holds {len(row.data)} + {len(row.digests)} bytes, "
                f"not {data_bytes} + {digest_bytes}",
                row=row.index,
            )
    return None


def expected_entries(spec: ChallengeSpec, request: RevealRequest) -> npt.NDArray[np.int64]:
    """C[i, j] for the drawn rows i and columns j, shape (rows, cols), computed from the seed
    alone: each drawn row of A against the drawn columns of B, product by product."""
    cols = list(request.cols)
    expected = np.empty((len(request.rows), len(cols)), dtype=np.int64)
    by_product: dict[int, list[int]] = {}
    for k, i in enumerate(request.rows):
        by_product.setdefault(i // spec.n, []).append(k)
    for product, ks in by_product.items():
        local = [request.rows[k] % spec.n for k in ks]
        a_rows = rows_of_a(spec.seed, spec.n, spec.profile, local, product=product)
        b_cols = cols_of_b(spec.seed, spec.n, spec.profile, cols, product=product)
        # float64 BLAS is exact: every profile keeps n·a·b < 2^31 < 2^53 in every product.
        expected[ks] = (a_rows @ b_cols.T).astype(np.int64)
    return expected


def _check_values(spec: ChallengeSpec, request: RevealRequest, reveal: Reveal) -> Verdict:
    if not request.rows or not request.cols:
        return Verdict.passed()
    cols = list(request.cols)
    expected = expected_entries(spec, request)
    revealed = np.stack([slice_entries(spec.n, cols, row.data) for row in reveal.rows]).astype(
        np.int64
    )
    wrong = np.argwhere(expected != revealed)
    if wrong.size:
        k, m = (int(x) for x in wrong[0])
        i, j = request.rows[k], cols[m]
        return Verdict.failed(
            VerdictReason.WRONG_VALUE,
            f"C[{i},{j}] is {revealed[k, m]}, expected {expected[k, m]}",
            row=i,
            col=j,
        )
    return Verdict.passed()
