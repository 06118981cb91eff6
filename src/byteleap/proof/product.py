"""What a solver holds between its commitment and its reveal, whichever backend computed it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from byteleap.proof.merkle import MerkleTree


@dataclass(frozen=True)
class Product:
    """The committed product: its tree and a way to read back one encoded row."""

    tree: MerkleTree
    row_bytes: Callable[[int], bytes]
    #: Where the product lies until its rows are revealed ("cpu", or a GPU: products·n² words).
    device: str = "cpu"
