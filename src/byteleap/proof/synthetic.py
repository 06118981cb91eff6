"""Synthetic proofs for benchmarks: a commitment and reveal that pass verification for a draw
known in advance, without computing the product.

Only the drawn entries C[i, j] are computed, from the seed exactly as the validator does; every
other entry of a drawn row is zero, and every node of the Merkle tree off the drawn rows' paths
is random (an unsampled leaf, or a whole subtree of them). A verifier cannot tell, because it
looks at nothing else: the drawn rows' bytes and proofs and the drawn entries. What makes this
no attack on a real validator is the order: its draw comes from a CSPRNG after the commitment.
A benchmark's miners are handed the draw through ``seeded_request`` instead, which the
validator side of the benchmark uses too (``byteleap bench validator``; the output says so).

The validator's cost is the real one: slices of the drawn rows to parse and hash, full proofs,
the same recomputation. At n = 32768 the honest product would take a GPU, not a benchmark.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import random
from collections.abc import Callable
from dataclasses import dataclass

import blake3
import numpy as np
import numpy.typing as npt

from byteleap.proof.challenge import DEFAULT_COLS, DEFAULT_ROWS, signing_payload
from byteleap.proof.merkle import (
    SEGMENT_BYTES,
    TreeKeys,
    leaf_hash,
    node_hash,
    proof_shape,
    root_hash,
    segment_count,
)
from byteleap.proof.messages import ChallengeSpec, Commitment, Reveal, RevealedRow, RevealRequest
from byteleap.proof.slices import revealed_segments, slice_digest
from byteleap.proof.verify import expected_entries

__all__ = ["SyntheticProof", "seeded_request", "synthesize"]

Level = dict[int, bytes]


def seeded_request(
    key: bytes, spec: ChallengeSpec, *, s: int = DEFAULT_ROWS, t: int = DEFAULT_COLS
) -> RevealRequest:
    """The reveal drawn for ``spec`` by a generator seeded from ``key`` and its id: whoever
    holds ``key`` knows it before the commitment (the same sampling as ``draw_reveal``)."""
    seed = hmac.new(key, spec.challenge_id.encode(), hashlib.sha256).digest()
    draw = random.Random(seed)
    return RevealRequest(
        challenge_id=spec.challenge_id,
        rows=tuple(draw.sample(range(spec.row_count), min(s, spec.row_count))),
        cols=tuple(draw.sample(range(spec.n), min(t, spec.n))),
    )


@dataclass(frozen=True)
class SyntheticProof:
    """What a synthetic worker keeps between its commitment and its reveal: the drawn entries
    and the drawn rows' proofs (a few KiB; the rows are rebuilt when revealed)."""

    spec: ChallengeSpec
    request: RevealRequest
    values: npt.NDArray[np.int32]
    root: bytes
    proofs: tuple[tuple[bytes, ...], ...]

    def row(self, k: int) -> bytes:
        """Drawn row k: zeros except its drawn entries, int32 little-endian."""
        row = np.zeros(self.spec.n, dtype="<i4")
        row[list(self.request.cols)] = self.values[k]
        return row.tobytes()

    def row_slice(self, k: int) -> tuple[bytes, bytes]:
        """Drawn row k's slice; every segment it does not reveal is zeros, whose digest is
        hashed once (``slice_row`` would hash all of them, 256 per row at n = 32768)."""
        n, cols = self.spec.n, self.request.cols
        row = memoryview(self.row(k))
        revealed = revealed_segments(n, cols)
        data = b"".join(row[j * SEGMENT_BYTES : (j + 1) * SEGMENT_BYTES] for j in revealed)
        last = segment_count(n) - 1
        digests = b"".join(
            _zero_digest(4 * n - last * SEGMENT_BYTES if j == last else SEGMENT_BYTES)
            for j in sorted(set(range(last + 1)).difference(revealed))
        )
        return data, digests

    def commitment(self, sign: Callable[[bytes], bytes], compute_s: float = 0.0) -> Commitment:
        cid = self.spec.challenge_id
        return Commitment(
            challenge_id=cid,
            root=self.root,
            compute_s=compute_s,
            signature=sign(signing_payload(cid, self.root)),
        )

    def reveal(self) -> Reveal:
        return Reveal(
            challenge_id=self.spec.challenge_id,
            rows=tuple(
                RevealedRow(index=i, data=data, digests=digests, proof=self.proofs[k])
                for k, i in enumerate(self.request.rows)
                for data, digests in [self.row_slice(k)]
            ),
        )


def synthesize(spec: ChallengeSpec, request: RevealRequest) -> SyntheticProof:
    """A proof that answers ``request`` for ``spec``; see the module docstring."""
    if request.challenge_id != spec.challenge_id:
        raise ValueError("the request names another challenge")
    keys = TreeKeys.for_challenge(spec.challenge_id)
    values = expected_entries(spec, request).astype(np.int32)
    partial = SyntheticProof(spec, request, values, b"", ())
    leaves: Level = {}
    for k, i in enumerate(request.rows):
        digest = slice_digest(spec.n, request.cols, *partial.row_slice(k))
        assert digest is not None  # a slice made for these columns fits them
        leaves[i] = leaf_hash(keys, i, digest)
    root, levels = _sparse_tree(keys, spec.row_count, leaves)
    proofs = tuple(_proof(levels, i, spec.row_count) for i in request.rows)
    return SyntheticProof(spec, request, values, root, proofs)


def _sparse_tree(keys: TreeKeys, count: int, leaves: Level) -> tuple[bytes, list[Level]]:
    """The root over ``count`` leaves of which only ``leaves`` are given, and every level's
    known nodes: the given leaves' paths and their siblings, random where nothing was given.
    The same shape as ``merkle.MerkleTree`` (an odd last node is carried up)."""
    levels = [dict(leaves)]
    width = count
    while width > 1:
        level = levels[-1]
        parents: Level = {}
        for p in sorted({i >> 1 for i in level}):
            left, right = 2 * p, 2 * p + 1
            if right >= width:
                parents[p] = level[left]
                continue
            a = level.setdefault(left, os.urandom(32))
            b = level.setdefault(right, os.urandom(32))
            parents[p] = node_hash(keys, a, b)
        levels.append(parents)
        width = (width + 1) // 2
    return root_hash(keys, count, levels[-1][0]), levels


def _proof(levels: list[Level], index: int, count: int) -> tuple[bytes, ...]:
    return tuple(
        levels[depth][(index >> depth) ^ 1]
        for depth, side in enumerate(proof_shape(index, count))
        if side is not None
    )


@functools.cache
def _zero_digest(size: int) -> bytes:
    return blake3.blake3(bytes(size)).digest()
