"""Row leaves and an index-bound Merkle tree (BLAKE3).

    segment     s_ij = BLAKE3(row_i bytes [512·j, 512·(j+1)))    (int32 little-endian row)
    row digest  d_i  = BLAKE3(s_i0 ‖ s_i1 ‖ … ‖ s_i,S-1)         (S = ⌈n / 128⌉ segments)
    leaf        L_i  = BLAKE3_keyed(K_leaf, u64le(i) ‖ d_i)
    node        N    = BLAKE3_keyed(K_node, left ‖ right)
    root        R    = BLAKE3_keyed(K_root, u64le(count) ‖ top)

with K_leaf, K_node, K_root = BLAKE3 derive_key(context, challenge_id): distinct keys separate
leaves from nodes and bind every hash to the challenge. Levels pair neighbours left to right;
an odd last node is carried up unchanged (never duplicated), the same left-balanced shape as
BLAKE3's own chunk tree. A proof is the list of siblings that exist on the path; the verifier
derives from (index, count) which levels have one and on which side, so a proof only
verifies at the index it was made for.

The row digest is separate from the leaf so a GPU can hash rows where they lie and hand the
host only 32 bytes per row. It hashes the row's 512-byte segments first so that a reveal can
carry only the segments that hold the sampled columns and the other segments' digests
(``proof.slices``): at n = 32768 that is about a sixth of the row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import blake3
import numpy as np
import numpy.typing as npt

DIGEST_BYTES = 32
_CONTEXT = "byteleap 2025-01 proof-of-compute v1 "

U8Array = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class TreeKeys:
    """The three per-challenge hash keys."""

    leaf: bytes
    node: bytes
    root: bytes

    @classmethod
    def for_challenge(cls, challenge_id: str) -> TreeKeys:
        material = challenge_id.encode()
        return cls(
            *(
                blake3.blake3(material, derive_key_context=_CONTEXT + part).digest()
                for part in ("leaf", "node", "root")
            )
        )


#: Entries (int32 words) per hashed segment of a row; the last segment may be shorter.
SEGMENT_WORDS = 128
SEGMENT_BYTES = 4 * SEGMENT_WORDS


def segment_count(n: int) -> int:
    """Segments of an n-entry row."""
    return -(-n // SEGMENT_WORDS)


def segment_digests(row: bytes | memoryview) -> list[bytes]:
    """BLAKE3 of each 512-byte segment of an encoded row."""
    view = memoryview(row).cast("B")
    return [
        blake3.blake3(view[at : at + SEGMENT_BYTES]).digest()
        for at in range(0, len(view), SEGMENT_BYTES)
    ]


def digest_of_segments(digests: bytes | memoryview) -> bytes:
    """The row digest from its segments' digests, concatenated in order."""
    return blake3.blake3(digests).digest()


def row_digest(row: bytes | memoryview) -> bytes:
    return digest_of_segments(b"".join(segment_digests(row)))


def leaf_hash(keys: TreeKeys, index: int, digest: bytes) -> bytes:
    return blake3.blake3(index.to_bytes(8, "little") + digest, key=keys.leaf).digest()


def node_hash(keys: TreeKeys, left: bytes, right: bytes) -> bytes:
    return blake3.blake3(left + right, key=keys.node).digest()


def root_hash(keys: TreeKeys, count: int, top: bytes) -> bytes:
    return blake3.blake3(count.to_bytes(8, "little") + top, key=keys.root).digest()


def proof_shape(index: int, count: int) -> list[bool | None]:
    """Per level: None when the node is carried up, else True when the sibling is on the left."""
    if not 0 <= index < count:
        raise IndexError(f"leaf {index} outside 0..{count - 1}")
    shape: list[bool | None] = []
    while count > 1:
        sibling = index ^ 1
        shape.append(None if sibling >= count else bool(index & 1))
        index >>= 1
        count = (count + 1) // 2
    return shape


@dataclass(frozen=True)
class MerkleTree:
    """All levels of a tree, leaves first; each level an array of shape (k, 32)."""

    keys: TreeKeys
    levels: tuple[U8Array, ...]

    @classmethod
    def from_leaves(cls, keys: TreeKeys, leaves: Sequence[bytes]) -> MerkleTree:
        if not leaves:
            raise ValueError("a tree needs at least one leaf")
        level = list(leaves)
        levels = [_as_array(level)]
        while len(level) > 1:
            level = [
                node_hash(keys, level[k], level[k + 1]) if k + 1 < len(level) else level[k]
                for k in range(0, len(level), 2)
            ]
            levels.append(_as_array(level))
        return cls(keys, tuple(levels))

    @classmethod
    def from_row_digests(cls, keys: TreeKeys, digests: Sequence[bytes]) -> MerkleTree:
        return cls.from_leaves(keys, [leaf_hash(keys, i, d) for i, d in enumerate(digests)])

    @property
    def count(self) -> int:
        return int(self.levels[0].shape[0])

    @property
    def root(self) -> bytes:
        return root_hash(self.keys, self.count, self.levels[-1][0].tobytes())

    def leaf(self, index: int) -> bytes:
        return bytes(self.levels[0][index])

    def proof(self, index: int) -> list[bytes]:
        siblings: list[bytes] = []
        for depth, side in enumerate(proof_shape(index, self.count)):
            if side is not None:
                siblings.append(self.levels[depth][(index >> depth) ^ 1].tobytes())
        return siblings


def _as_array(level: Sequence[bytes]) -> U8Array:
    return np.frombuffer(b"".join(level), dtype=np.uint8).reshape(len(level), DIGEST_BYTES)


def root_from_proof(
    keys: TreeKeys, index: int, count: int, leaf: bytes, siblings: Sequence[bytes]
) -> bytes | None:
    """The root a proof leads to, or None when its length does not fit (index, count)."""
    shape = proof_shape(index, count)
    if len(siblings) != sum(side is not None for side in shape):
        return None
    node = leaf
    pending = iter(siblings)
    for side in shape:
        if side is None:
            continue
        sibling = next(pending)
        if len(sibling) != DIGEST_BYTES:
            return None
        node = node_hash(keys, sibling, node) if side else node_hash(keys, node, sibling)
    return root_hash(keys, count, node)
