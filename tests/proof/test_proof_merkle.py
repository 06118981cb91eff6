"""Merkle tree: every proof verifies at its own index only; any single-bit change breaks it."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byteleap.proof.merkle import MerkleTree, TreeKeys, proof_shape, root_from_proof

pytestmark = pytest.mark.adversarial
KEYS = TreeKeys.for_challenge("merkle-test")


def _leaves(count: int) -> list[bytes]:
    return [hashlib.sha256(i.to_bytes(4, "little")).digest() for i in range(count)]


def _flip(data: bytes, bit: int) -> bytes:
    out = bytearray(data)
    out[bit // 8] ^= 1 << (bit % 8)
    return bytes(out)


@pytest.mark.parametrize("count", range(1, 131))
def test_every_index_verifies(count: int) -> None:
    tree = MerkleTree.from_leaves(KEYS, _leaves(count))
    for i in range(count):
        assert root_from_proof(KEYS, i, count, tree.leaf(i), tree.proof(i)) == tree.root


@settings(max_examples=300, deadline=None)
@given(count=st.integers(1, 130), data=st.data())
def test_single_bit_changes_fail(count: int, data: st.DataObject) -> None:
    tree = MerkleTree.from_leaves(KEYS, _leaves(count))
    i = data.draw(st.integers(0, count - 1))
    leaf, proof, root = tree.leaf(i), tree.proof(i), tree.root
    bit = data.draw(st.integers(0, 255))
    assert root_from_proof(KEYS, i, count, _flip(leaf, bit), proof) != root
    assert _flip(root, bit) != root_from_proof(KEYS, i, count, leaf, proof)
    if proof:
        k = data.draw(st.integers(0, len(proof) - 1))
        forged = [*proof[:k], _flip(proof[k], bit), *proof[k + 1 :]]
        assert root_from_proof(KEYS, i, count, leaf, forged) != root


@settings(max_examples=200, deadline=None)
@given(count=st.integers(2, 130), data=st.data())
def test_proof_is_bound_to_its_index(count: int, data: st.DataObject) -> None:
    tree = MerkleTree.from_leaves(KEYS, _leaves(count))
    i = data.draw(st.integers(0, count - 1))
    j = data.draw(st.integers(0, count - 1).filter(lambda j: j != i))
    assert root_from_proof(KEYS, j, count, tree.leaf(i), tree.proof(i)) != tree.root


def test_odd_leaf_is_carried_not_duplicated() -> None:
    leaves = _leaves(3)
    tree = MerkleTree.from_leaves(KEYS, leaves)
    # A 4-leaf tree that duplicates the last leaf must not share the root.
    assert MerkleTree.from_leaves(KEYS, [*leaves, leaves[2]]).root != tree.root
    assert proof_shape(2, 3) == [None, True]
    assert tree.proof(2) == [tree.levels[1][0].tobytes()]


def test_wrong_proof_length_and_other_challenge_fail() -> None:
    tree = MerkleTree.from_leaves(KEYS, _leaves(9))
    proof = tree.proof(4)
    assert root_from_proof(KEYS, 4, 9, tree.leaf(4), [*proof, proof[0]]) is None
    assert root_from_proof(KEYS, 4, 9, tree.leaf(4), proof[:-1]) is None
    other = TreeKeys.for_challenge("another")
    assert root_from_proof(other, 4, 9, tree.leaf(4), proof) != tree.root
    assert root_from_proof(KEYS, 4, 10, tree.leaf(4), proof) != tree.root
