"""Row digests and the Merkle tree as Triton kernels, for the CUDA challenge path.

At n = 32768–65536 the product is 4–17 GB: hashing it on the host would cost more than the
multiplication. These kernels read the product where it lies (int32, or the float32 an fp16
product accumulates into, converted word by word) and hand the host only the tree's levels,
2·n·32 bytes.

- ``_chunk_kernel``: one lane per (row, 1 KiB chunk) runs the chunk's 16 compressions;
- ``_pair_kernel``: one compression of two neighbouring 32-byte values. It builds every
  parent level of each row's BLAKE3 tree (unkeyed, PARENT, ROOT on the last) and every node
  level of the Merkle tree (keyed with K_node, one 64-byte message), an odd last value carried
  up unchanged in both, as BLAKE3's left-balanced tree and ``merkle.MerkleTree`` do;
- ``_leaf_kernel``: the keyed leaf hash of (u64le(i) ‖ row digest), a 40-byte message.

A row digest takes two BLAKE3 passes (``row_digests``): one over the product viewed as rows
of 512-byte segments (one chunk each), one over each row's segment digests (n/4 bytes).

Bit-for-bit agreement with the ``blake3`` package and ``merkle.MerkleTree`` is tested under
Triton's CPU interpreter, and the kernels are compiled for sm_90 in tests, without a GPU.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import triton
import triton.language as tl

from byteleap.proof.merkle import SEGMENT_WORDS, MerkleTree, TreeKeys

if TYPE_CHECKING:
    import torch

IV = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
CHUNK_START, CHUNK_END, PARENT, ROOT, KEYED_HASH = 1, 2, 4, 8, 16
_ONE_BLOCK = CHUNK_START | CHUNK_END | ROOT
_CHUNK_WORDS = 256
_LANES = 128
# Integer kernels: no floating-point multiply-add to fuse. Said explicitly because Triton 3.9
# warns when it is left to the default (which changes in 3.10).
_OPTIONS = {"enable_fp_fusion": False}


@triton.jit
def _rotr(x, r: tl.constexpr):
    return (x >> r) | (x << (32 - r))


@triton.jit
def _g(a, b, c, d, x, y):
    a = a + b + x
    d = _rotr(d ^ a, 16)
    c = c + d
    b = _rotr(b ^ c, 12)
    a = a + b + y
    d = _rotr(d ^ a, 8)
    c = c + d
    b = _rotr(b ^ c, 7)
    return a, b, c, d


@triton.jit
def _compress(
    h0, h1, h2, h3, h4, h5, h6, h7,
    m0, m1, m2, m3, m4, m5, m6, m7,
    m8, m9, m10, m11, m12, m13, m14, m15,
    counter, block_len, flags,
):  # fmt: skip
    """The compression function; every argument is a uint32 tensor of one shape."""
    zero = counter * 0
    v0, v1, v2, v3, v4, v5, v6, v7 = h0, h1, h2, h3, h4, h5, h6, h7
    v8 = zero + 0x6A09E667
    v9 = zero + 0xBB67AE85
    v10 = zero + 0x3C6EF372
    v11 = zero + 0xA54FF53A
    v12 = counter  # the counter's high word is always 0 here (< 2^32 chunks)
    v13 = zero
    v14 = block_len
    v15 = flags
    for _ in tl.static_range(7):
        v0, v4, v8, v12 = _g(v0, v4, v8, v12, m0, m1)
        v1, v5, v9, v13 = _g(v1, v5, v9, v13, m2, m3)
        v2, v6, v10, v14 = _g(v2, v6, v10, v14, m4, m5)
        v3, v7, v11, v15 = _g(v3, v7, v11, v15, m6, m7)
        v0, v5, v10, v15 = _g(v0, v5, v10, v15, m8, m9)
        v1, v6, v11, v12 = _g(v1, v6, v11, v12, m10, m11)
        v2, v7, v8, v13 = _g(v2, v7, v8, v13, m12, m13)
        v3, v4, v9, v14 = _g(v3, v4, v9, v14, m14, m15)
        # BLAKE3's message permutation (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
        m0, m1, m2, m3, m4, m5, m6, m7, m8, m9, m10, m11, m12, m13, m14, m15 = (
            m2, m6, m3, m10, m7, m0, m4, m13, m1, m11, m12, m5, m9, m14, m15, m8
        )  # fmt: skip
    return v0 ^ v8, v1 ^ v9, v2 ^ v10, v3 ^ v11, v4 ^ v12, v5 ^ v13, v6 ^ v14, v7 ^ v15


@triton.jit
def _word(base, index, limit, live, SRC_FLOAT: tl.constexpr):
    """Word ``index`` of a chunk as uint32, zero past ``limit`` (BLAKE3 pads with zeros)."""
    x = tl.load(base + index, mask=live & (index < limit), other=0)
    if SRC_FLOAT:
        # An fp16 product accumulates into float32; its entries are exact integers.
        x = x.to(tl.int32)
    return x.to(tl.uint32, bitcast=True)


@triton.jit
def _store8(ptr, lane, live, h0, h1, h2, h3,
            h4, h5, h6, h7):  # fmt: skip
    out = ptr + lane.to(tl.int64) * 8
    tl.store(out + 0, h0.to(tl.int32, bitcast=True), mask=live)
    tl.store(out + 1, h1.to(tl.int32, bitcast=True), mask=live)
    tl.store(out + 2, h2.to(tl.int32, bitcast=True), mask=live)
    tl.store(out + 3, h3.to(tl.int32, bitcast=True), mask=live)
    tl.store(out + 4, h4.to(tl.int32, bitcast=True), mask=live)
    tl.store(out + 5, h5.to(tl.int32, bitcast=True), mask=live)
    tl.store(out + 6, h6.to(tl.int32, bitcast=True), mask=live)
    tl.store(out + 7, h7.to(tl.int32, bitcast=True), mask=live)


@triton.jit
def _load8(ptr, index, live):
    at = ptr + index.to(tl.int64) * 8
    return (
        tl.load(at + 0, mask=live, other=0).to(tl.uint32, bitcast=True),
        tl.load(at + 1, mask=live, other=0).to(tl.uint32, bitcast=True),
        tl.load(at + 2, mask=live, other=0).to(tl.uint32, bitcast=True),
        tl.load(at + 3, mask=live, other=0).to(tl.uint32, bitcast=True),
        tl.load(at + 4, mask=live, other=0).to(tl.uint32, bitcast=True),
        tl.load(at + 5, mask=live, other=0).to(tl.uint32, bitcast=True),
        tl.load(at + 6, mask=live, other=0).to(tl.uint32, bitcast=True),
        tl.load(at + 7, mask=live, other=0).to(tl.uint32, bitcast=True),
    )


@triton.jit
def _chunk_kernel(src_ptr, cv_ptr, n_words, chunks, lanes,
                  SRC_FLOAT: tl.constexpr, LANES: tl.constexpr):  # fmt: skip
    """Chaining value of chunk ``lane % chunks`` of row ``lane // chunks`` (unkeyed BLAKE3)."""
    lane = tl.program_id(0) * LANES + tl.arange(0, LANES)
    live = lane < lanes
    row = lane // chunks
    chunk = lane % chunks
    chunk_words = tl.minimum(n_words - chunk * 256, 256)
    blocks = (chunk_words + 15) // 16
    base = src_ptr + row.to(tl.int64) * n_words + chunk * 256
    zero = (lane * 0).to(tl.uint32)
    h0, h1, h2, h3 = zero + 0x6A09E667, zero + 0xBB67AE85, zero + 0x3C6EF372, zero + 0xA54FF53A
    h4, h5, h6, h7 = zero + 0x510E527F, zero + 0x9B05688C, zero + 0x1F83D9AB, zero + 0x5BE0CD19
    root = tl.where(chunks == 1, 8, 0)  # ROOT
    for b in range(16):
        w = b * 16
        first = tl.where(b == 0, 1, 0)  # CHUNK_START
        last = tl.where(b == blocks - 1, 2 + root, 0)  # CHUNK_END (+ ROOT for a 1-chunk row)
        n0, n1, n2, n3, n4, n5, n6, n7 = _compress(
            h0, h1, h2, h3, h4, h5, h6, h7,
            _word(base, w + 0, chunk_words, live, SRC_FLOAT),
            _word(base, w + 1, chunk_words, live, SRC_FLOAT),
            _word(base, w + 2, chunk_words, live, SRC_FLOAT),
            _word(base, w + 3, chunk_words, live, SRC_FLOAT),
            _word(base, w + 4, chunk_words, live, SRC_FLOAT),
            _word(base, w + 5, chunk_words, live, SRC_FLOAT),
            _word(base, w + 6, chunk_words, live, SRC_FLOAT),
            _word(base, w + 7, chunk_words, live, SRC_FLOAT),
            _word(base, w + 8, chunk_words, live, SRC_FLOAT),
            _word(base, w + 9, chunk_words, live, SRC_FLOAT),
            _word(base, w + 10, chunk_words, live, SRC_FLOAT),
            _word(base, w + 11, chunk_words, live, SRC_FLOAT),
            _word(base, w + 12, chunk_words, live, SRC_FLOAT),
            _word(base, w + 13, chunk_words, live, SRC_FLOAT),
            _word(base, w + 14, chunk_words, live, SRC_FLOAT),
            _word(base, w + 15, chunk_words, live, SRC_FLOAT),
            chunk.to(tl.uint32),
            (tl.minimum(chunk_words - w, 16) * 4).to(tl.uint32),
            (zero + first + last).to(tl.uint32),
        )  # fmt: skip
        active = b < blocks
        h0, h1 = tl.where(active, n0, h0), tl.where(active, n1, h1)
        h2, h3 = tl.where(active, n2, h2), tl.where(active, n3, h3)
        h4, h5 = tl.where(active, n4, h4), tl.where(active, n5, h5)
        h6, h7 = tl.where(active, n6, h6), tl.where(active, n7, h7)
    _store8(cv_ptr, lane, live, h0, h1, h2, h3, h4, h5, h6, h7)


@triton.jit
def _pair_kernel(src_ptr, dst_ptr, key_ptr, width, half,
                 lanes, flags, LANES: tl.constexpr):  # fmt: skip
    """dst[r, p] = compress(key; src[r, 2p] ‖ src[r, 2p + 1]), or src[r, 2p] when it is last."""
    lane = tl.program_id(0) * LANES + tl.arange(0, LANES)
    live = lane < lanes
    row = lane // half
    pair = lane % half
    left = row * width + 2 * pair
    paired = live & (2 * pair + 1 < width)
    l0, l1, l2, l3, l4, l5, l6, l7 = _load8(src_ptr, left, live)
    r0, r1, r2, r3, r4, r5, r6, r7 = _load8(src_ptr, left + 1, paired)
    k0, k1, k2, k3, k4, k5, k6, k7 = _load8(key_ptr, lane * 0, live)
    zero = (lane * 0).to(tl.uint32)
    n0, n1, n2, n3, n4, n5, n6, n7 = _compress(
        k0, k1, k2, k3, k4, k5, k6, k7,
        l0, l1, l2, l3, l4, l5, l6, l7, r0, r1, r2, r3, r4, r5, r6, r7,
        zero, zero + 64, zero + flags,
    )  # fmt: skip
    _store8(
        dst_ptr, lane, live,
        tl.where(paired, n0, l0), tl.where(paired, n1, l1),
        tl.where(paired, n2, l2), tl.where(paired, n3, l3),
        tl.where(paired, n4, l4), tl.where(paired, n5, l5),
        tl.where(paired, n6, l6), tl.where(paired, n7, l7),
    )  # fmt: skip


@triton.jit
def _leaf_kernel(digest_ptr, dst_ptr, key_ptr, count,
                 LANES: tl.constexpr):  # fmt: skip
    """Leaf i = keyed BLAKE3(K_leaf, u64le(i) ‖ digest_i): one 40-byte block."""
    lane = tl.program_id(0) * LANES + tl.arange(0, LANES)
    live = lane < count
    d0, d1, d2, d3, d4, d5, d6, d7 = _load8(digest_ptr, lane, live)
    k0, k1, k2, k3, k4, k5, k6, k7 = _load8(key_ptr, lane * 0, live)
    zero = (lane * 0).to(tl.uint32)
    n0, n1, n2, n3, n4, n5, n6, n7 = _compress(
        k0, k1, k2, k3, k4, k5, k6, k7,
        lane.to(tl.uint32), zero, d0, d1, d2, d3, d4, d5, d6, d7,
        zero, zero, zero, zero, zero, zero,
        zero, zero + 40, zero + 27,  # KEYED_HASH | CHUNK_START | CHUNK_END | ROOT
    )  # fmt: skip
    _store8(dst_ptr, lane, live, n0, n1, n2, n3, n4, n5, n6, n7)


def _grid(lanes: int) -> tuple[int]:
    return (triton.cdiv(lanes, _LANES),)


def _key_tensor(key: bytes | None, like: torch.Tensor) -> torch.Tensor:
    import torch

    words = np.array(IV, dtype="<u4") if key is None else np.frombuffer(key, dtype="<u4")
    return torch.from_numpy(words.view("<i4").copy()).to(like.device)


def _pair_level(src: torch.Tensor, key: torch.Tensor, flags: int) -> torch.Tensor:
    """One level up: (rows, width, 8) → (rows, ⌈width/2⌉, 8)."""
    import torch

    rows, width, _ = src.shape
    half = (width + 1) // 2
    dst = torch.empty((rows, half, 8), dtype=torch.int32, device=src.device)
    _pair_kernel[_grid(rows * half)](
        src, dst, key, width, half, rows * half, flags, LANES=_LANES, **_OPTIONS
    )
    return dst


def row_digests(product: torch.Tensor) -> torch.Tensor:
    """Every row's digest (``merkle.row_digest``: BLAKE3 over its 512-byte segments' BLAKE3s)
    → (rows, 8) int32 words, on the device.

    ``product`` is int32, or float32 holding exact integers (an fp16 product's accumulator).
    """
    import torch

    if product.dtype not in (torch.int32, torch.float32) or product.dim() != 2:
        raise ValueError("row_digests takes a 2-D int32 or float32 tensor")
    rows, n = product.shape
    whole = n // SEGMENT_WORDS * SEGMENT_WORDS
    parts = []
    if whole:
        # A view when the product is contiguous (challenge sizes are multiples of 256).
        segments = product[:, :whole].reshape(rows * (whole // SEGMENT_WORDS), SEGMENT_WORDS)
        parts.append(blake3_rows(segments).reshape(rows, -1, 8))
    if whole < n:
        parts.append(blake3_rows(product[:, whole:]).reshape(rows, 1, 8))
    segment_words = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
    return blake3_rows(segment_words.reshape(rows, -1))


def blake3_rows(product: torch.Tensor) -> torch.Tensor:
    """Unkeyed BLAKE3 of every row's int32 little-endian bytes → (rows, 8) int32 words."""
    import torch

    product = product.contiguous()
    rows, n_words = product.shape
    chunks = -(-n_words // _CHUNK_WORDS)
    level = torch.empty((rows, chunks, 8), dtype=torch.int32, device=product.device)
    _chunk_kernel[_grid(rows * chunks)](
        product,
        level,
        n_words,
        chunks,
        rows * chunks,
        SRC_FLOAT=product.dtype == torch.float32,
        LANES=_LANES,
        **_OPTIONS,
    )
    iv = _key_tensor(None, product)
    while level.shape[1] > 1:
        level = _pair_level(level, iv, PARENT | (ROOT if level.shape[1] == 2 else 0))
    return level[:, 0]


def merkle_tree(keys: TreeKeys, digests: torch.Tensor) -> MerkleTree:
    """The Merkle tree over row digests (rows, 8), built on the device, levels copied back."""
    import torch

    count = digests.shape[0]
    leaves = torch.empty((count, 8), dtype=torch.int32, device=digests.device)
    _leaf_kernel[_grid(count)](
        digests.contiguous(),
        leaves,
        _key_tensor(keys.leaf, digests),
        count,
        LANES=_LANES,
        **_OPTIONS,
    )
    node_key = _key_tensor(keys.node, digests)
    levels = [leaves]
    while levels[-1].shape[0] > 1:
        up = _pair_level(levels[-1][None], node_key, KEYED_HASH | _ONE_BLOCK)
        levels.append(up[0])
    host = [level.cpu().numpy().view(np.uint8).reshape(-1, 32) for level in levels]
    return MerkleTree(keys, tuple(host))


def tree_of_product(keys: TreeKeys, product: torch.Tensor) -> MerkleTree:
    """The committed tree of a product that stays on its device."""
    return merkle_tree(keys, row_digests(product))
