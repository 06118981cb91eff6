"""Worker compute backends: multiply the challenge matrices and digest every result row.

numpy: float64 BLAS (integer matmul has no BLAS path and is ~100× slower; float64 is exact
here because every profile keeps n·a·b < 2³¹), pipelined in row blocks so generating A and
hashing rows overlap the product. torch: float64 on CPU; on CUDA the profile's
own arithmetic (fp16 in / fp32 accumulate, int8 in / int32 accumulate) with rows digested on
the device, so the n×n product never crosses to the host.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from byteleap.proof.errors import BackendError
from byteleap.proof.matrices import block_of_a, full_a, full_b, full_b_columns
from byteleap.proof.merkle import MerkleTree, TreeKeys, leaf_hash, row_digest
from byteleap.proof.messages import ChallengeSpec
from byteleap.proof.profiles import Profile

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

#: Row blocks of the pipelined CPU product (fewer when n is small).
PIPELINE_BLOCKS = 4
_MIN_BLOCK_ROWS = 64
_ROWS_PER_GIL_YIELD = 8


class Backend(StrEnum):
    NUMPY = "numpy"
    TORCH = "torch"


@dataclass(frozen=True)
class Product:
    """The committed product: its tree and a way to read back one encoded row."""

    tree: MerkleTree
    row_bytes: Callable[[int], bytes]


def encode_rows(product: npt.NDArray[np.float64]) -> npt.NDArray[np.int32]:
    """Canonical int32 little-endian rows.

    No range scan here: the profile bound makes an honest product fit by construction, and a
    dishonest or broken one is what ``verify`` exists to catch.
    """
    return product.astype("<i4")


def tree_of_rows(keys: TreeKeys, rows: npt.NDArray[np.int32]) -> MerkleTree:
    return MerkleTree.from_row_digests(
        keys, [row_digest(memoryview(row).cast("B")) for row in rows]
    )


def _encode_and_hash(
    keys: TreeKeys, product: npt.NDArray[np.float64], rows: npt.NDArray[np.int32], start: int
) -> list[bytes]:
    """Encode a block of the product into ``rows`` and return the block's leaves."""
    # The profile bound makes an honest product fit int32 by construction.
    np.copyto(rows, product, casting="unsafe")
    leaves = []
    for k, row in enumerate(rows):
        leaves.append(leaf_hash(keys, start + k, row_digest(memoryview(row).cast("B"))))
        if k % _ROWS_PER_GIL_YIELD == _ROWS_PER_GIL_YIELD - 1:
            # blake3 holds the GIL on short rows; a thread waiting for it (the one driving
            # BLAS) would otherwise wait out the whole switch interval (5 ms) each time.
            time.sleep(0)
    return leaves


def _row_blocks(n: int) -> list[tuple[int, int]]:
    count = max(1, min(PIPELINE_BLOCKS, n // _MIN_BLOCK_ROWS))
    edges = [n * k // count for k in range(count + 1)]
    return list(itertools.pairwise(edges))


def _numpy_product(spec: ChallengeSpec, keys: TreeKeys) -> Product:
    """C = A·B in row blocks. One helper thread generates the next block of A, and encodes and
    hashes the previous block of C, while BLAS multiplies the current one (BLAS releases the
    GIL), so the single-threaded work overlaps the multi-threaded product."""
    n, seed, profile = spec.n, spec.seed, spec.profile
    blocks = _row_blocks(n)
    rows = np.empty((n, n), dtype="<i4")
    tallest = max(hi - lo for lo, hi in blocks)
    # Two product buffers: BLAS fills one while the helper encodes the other.
    buffers = [np.empty((tallest, n), dtype=np.float64) for _ in range(min(2, len(blocks)))]
    with ThreadPoolExecutor(max_workers=1) as helper:
        next_a = helper.submit(block_of_a, seed, n, profile, *blocks[0], threads=1)
        b = full_b(seed, n, profile)
        hashed: list[Future[list[bytes]]] = []
        for k, (lo, hi) in enumerate(blocks):
            a = next_a.result()
            if k + 1 < len(blocks):
                next_a = helper.submit(block_of_a, seed, n, profile, *blocks[k + 1], threads=1)
            if k >= len(buffers):
                hashed[k - len(buffers)].result()  # that block's buffer is free again
            out = buffers[k % len(buffers)][: hi - lo]
            np.matmul(a, b, out=out)
            hashed.append(helper.submit(_encode_and_hash, keys, out, rows[lo:hi], lo))
        leaves = [leaf for part in hashed for leaf in part.result()]
    return Product(MerkleTree.from_leaves(keys, leaves), lambda i: rows[i].tobytes())


def _torch_product(spec: ChallengeSpec, keys: TreeKeys, device: str) -> Product:
    try:
        import torch
    except ImportError as exc:  # torch is an optional dependency
        raise BackendError("the torch backend needs torch installed") from exc
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise BackendError("CUDA requested but torch.cuda.is_available() is False")
    a = torch.from_numpy(full_a(spec.seed, spec.n, spec.profile)).to(dev)
    bt = torch.from_numpy(full_b_columns(spec.seed, spec.n, spec.profile)).to(dev)
    if dev.type != "cuda":
        rows = encode_rows((a @ bt.T).numpy())
        return Product(tree_of_rows(keys, rows), lambda i: rows[i].tobytes())
    from byteleap.proof.torch_blake3 import tree_on_device

    product = _cuda_product(a, bt.T, spec.profile)
    tree = tree_on_device(keys, product)
    return Product(tree, lambda i: product[i].cpu().numpy().astype("<i4").tobytes())


def _cuda_product(a: torch.Tensor, b: torch.Tensor, profile: Profile) -> torch.Tensor:
    """C = A·B as int32 on the device, in the profile's own arithmetic."""
    import torch

    n = a.shape[0]
    if profile is Profile.CUDA_I8 and n % 8 == 0 and n > 16:
        # b is a transposed view, i.e. column-major: the fast layout for _int_mm.
        return torch._int_mm(a.to(torch.int8), b.to(torch.int8))
    if profile is Profile.CUDA_F16:
        c = torch.mm(a.half(), b.half(), out_dtype=torch.float32)
        return c.to(torch.int32)
    return torch.mm(a, b).to(torch.int32)  # float64: exact for every profile


def compute_product(spec: ChallengeSpec, backend: Backend, device: str) -> Product:
    keys = TreeKeys.for_challenge(spec.challenge_id)
    if backend is Backend.NUMPY:
        if device != "cpu":
            raise BackendError(f"the numpy backend runs on cpu, not {device}")
        return _numpy_product(spec, keys)
    return _torch_product(spec, keys, device)
