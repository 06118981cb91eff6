"""The challenge matrices generated on the GPU, bit for bit the streams of ``matrices``.

At n = 32768 each matrix is 2^30 entries: numpy takes seconds per matrix on the host, then
the copy to the device, against ~0.1 s for the product itself. This kernel runs numpy's
Philox-4×64-10 (Random123's constants and round order: round, then bump the key) for one
counter block per lane and writes the block's 16 entries in the profile's input dtype
(fp16 or int8), so A and Bᵀ are born on the device, ready for ``torch.mm`` / ``_int_mm``.

Stream layout, as in ``matrices``: block b of a stream is Philox(counter = (b + 1, matrix,
seed words 2 and 3), key = seed words 0 and 1); each 64-bit output word gives four
little-endian 16-bit draws u, entry = ⌊u·(2v+1) / 2¹⁶⌋ − v.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import triton
import triton.language as tl

from byteleap.proof.matrices import SEED_BYTES

if TYPE_CHECKING:
    import torch

_LANES = 256
_ENTRIES_PER_BLOCK = 16
# Integer kernels: no floating-point multiply-add to fuse. Said explicitly because Triton 3.9
# warns when it is left to the default (which changes in 3.10).
_OPTIONS = {"enable_fp_fusion": False}


@triton.jit
def _philox_kernel(out_ptr, params_ptr, count, scale, v, LANES: tl.constexpr):
    blk = tl.program_id(0).to(tl.int64) * LANES + tl.arange(0, LANES)
    k0 = tl.load(params_ptr + 0).to(tl.uint64, bitcast=True)
    k1 = tl.load(params_ptr + 1).to(tl.uint64, bitcast=True)
    zero = (blk * 0).to(tl.uint64)
    c0 = blk.to(tl.uint64) + 1  # numpy increments the counter before each block
    c1 = zero + tl.load(params_ptr + 2).to(tl.uint64, bitcast=True)
    c2 = zero + tl.load(params_ptr + 3).to(tl.uint64, bitcast=True)
    c3 = zero + tl.load(params_ptr + 4).to(tl.uint64, bitcast=True)
    m0 = zero + 0xD2E7470EE14C6C93
    m1 = zero + 0xCA5A826395121157
    for _ in tl.static_range(10):
        hi0 = tl.umulhi(m0, c0)
        lo0 = m0 * c0
        hi1 = tl.umulhi(m1, c2)
        lo1 = m1 * c2
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0 = k0 + 0x9E3779B97F4A7C15
        k1 = k1 + 0xBB67AE8584CAA73B
    # Entry j of the block is 16-bit draw j % 4 of output word j // 4.
    j = tl.arange(0, 16)
    part = (j // 4)[None, :]
    word = tl.where(
        part == 0,
        c0[:, None],
        tl.where(part == 1, c1[:, None], tl.where(part == 2, c2[:, None], c3[:, None])),
    )
    draw = ((word >> ((j % 4) * 16).to(tl.uint64)[None, :]) & 0xFFFF).to(tl.uint32)
    value = ((draw * scale) >> 16).to(tl.int32) - v  # u·(2v+1) < 2^32: exact
    index = blk[:, None] * 16 + j[None, :]
    tl.store(out_ptr + index, value.to(out_ptr.dtype.element_ty), mask=index < count)


def _params(seed: bytes, stream: int, device: torch.device) -> torch.Tensor:
    import torch

    if len(seed) != SEED_BYTES:
        raise ValueError(f"seed must be {SEED_BYTES} bytes, got {len(seed)}")
    words = np.frombuffer(seed, dtype="<u8")
    params = np.array([words[0], words[1], stream, words[2], words[3]], dtype=np.uint64)
    return torch.from_numpy(params.view(np.int64)).to(device)


def generate_into(out: torch.Tensor, seed: bytes, stream: int, v: int) -> None:
    """Write entries 0..out.numel()-1 of one stream into the contiguous tensor ``out``.

    The caller allocates: a challenge of several products holds every matrix at once.
    """
    if not out.is_contiguous():
        raise ValueError("generate_into needs a contiguous tensor")
    count = out.numel()
    blocks = triton.cdiv(count, _ENTRIES_PER_BLOCK)
    grid = (triton.cdiv(blocks, _LANES),)
    _philox_kernel[grid](
        out, _params(seed, stream, out.device), count, 2 * v + 1, v, LANES=_LANES, **_OPTIONS
    )


def generate(
    seed: bytes, stream: int, n: int, v: int, dtype: torch.dtype, device: torch.device
) -> torch.Tensor:
    """Entries 0..n²-1 of one stream as an (n, n) tensor of ``dtype`` on ``device``.

    For A this is A; for B it is Bᵀ (B's stream is column-major), so ``.T`` gives B.
    """
    import torch

    out = torch.empty((n, n), dtype=dtype, device=device)
    generate_into(out, seed, stream, v)
    return out
