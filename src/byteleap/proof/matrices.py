"""Counter-based generation of the challenge matrices A and B.

Each matrix is one Philox-4×64 stream: the key is the first 128 bits of the 256-bit seed, the
counter's upper two words hold the other 128 bits and its second word names the matrix, so all
256 seed bits select the stream. Block b of a stream is the Philox output for the counter
(b + 1, matrix, seed[16:24], seed[24:32]). Every 64-bit draw is split into four little-endian
16-bit words u, and entry = floor(u·(2v+1) / 2¹⁶) − v, an integer in [-v, v], where v is the
matrix's own bound (``profiles.value_bounds``: A and B may differ). Entry k of a stream lies in
block k // 16, so any slice starts in O(1) by setting the counter.

A is stored row-major (entry k = A[k // n, k % n]); B is stored column-major
(entry k = B[k % n, k // n]), so one row of A and one column of B are each one contiguous
slice, generated alone in O(n).

A challenge of several products (``ChallengeSpec.products``) multiplies A_j·B_j for j = 0, 1, …:
product j's matrices are the streams ``stream_of(STREAM_A, j)`` and ``stream_of(STREAM_B, j)``,
the matrix word with j in its upper bits, so product 0 is the single product of old.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from byteleap.proof.profiles import Profile, value_bounds

SEED_BYTES = 32
STREAM_A = 0xA
STREAM_B = 0xB
#: The product index sits above the matrix tag in the counter's matrix word.
_PRODUCT_SHIFT = 8
_VALUES_PER_BLOCK = 16  # one Philox block = 4 × uint64 = 16 × uint16
# Entries per Philox call. The raw words (256 KiB) and the uint32 scratch (512 KiB) still fit
# in L2 until the transform reads them, and each chunk releases and retakes the GIL a few
# times: with 2^15 two threads filling A and B spent more time handing the GIL over than
# generating (14 ms for both vs 7 ms at 2^17, 2-core EPYC).
_CHUNK = 1 << 17
# Below this many entries a second thread costs more than it saves.
_PARALLEL_MIN = 1 << 20

F64Array = npt.NDArray[np.float64]


def stream_of(matrix: int, product: int) -> int:
    """The counter's matrix word for ``matrix`` (STREAM_A or STREAM_B) of product ``product``:
    the tag in the low byte keeps A and B apart, the product above it keeps products apart, and
    product 0 keeps the bare tag (the streams of a one-product challenge)."""
    if product < 0:
        raise ValueError(f"product index {product} is negative")
    return matrix | (product << _PRODUCT_SHIFT)


class _Stream:
    """One matrix stream of one seed: a Philox generator re-pointed for every slice.

    Re-pointing (assigning the state) costs a fraction of building a generator, which matters
    when the validator generates 40 short slices. Not thread-safe: one per thread.
    """

    def __init__(self, seed: bytes, stream: int) -> None:
        if len(seed) != SEED_BYTES:
            raise ValueError(f"seed must be {SEED_BYTES} bytes, got {len(seed)}")
        words = np.frombuffer(seed, dtype="<u8").astype(np.uint64)
        # Built as uint64 explicitly: a Python list with words ≥ 2^63 would go through float64.
        counter = np.array([0, stream, 0, 0], dtype=np.uint64)
        counter[2:] = words[2:]
        self._bitgen = np.random.Philox(key=words[:2].copy(), counter=counter)
        # The fresh state (empty output buffer) as a template: only the counter changes.
        self._state = self._bitgen.state

    def halves(self, first: int, count: int) -> npt.NDArray[np.uint16]:
        """The 16-bit draws for entries [first, first + count)."""
        block, skip = divmod(first, _VALUES_PER_BLOCK)
        blocks = -(-(skip + count) // _VALUES_PER_BLOCK)
        # numpy's Philox emits counter + 1 first: stream block b is the block of counter b + 1.
        self._state["state"]["counter"][0] = block
        self._bitgen.state = self._state
        raw = self._bitgen.random_raw(blocks * 4).astype("<u8", copy=False)
        return raw.view("<u2")[skip : skip + count]


def _fill_stream(out: F64Array, stream: _Stream, start: int, v: int) -> None:
    """Write entries [start, start + out.size) of ``stream`` into the flat array ``out``."""
    scale = 2 * v + 1
    scratch = np.empty(min(out.size, _CHUNK), dtype=np.uint32)
    for pos in range(0, out.size, _CHUNK):
        count = min(_CHUNK, out.size - pos)
        tmp = scratch[:count]
        # u·(2v+1) < 2^32: the integer product and shift are floor(u·(2v+1) / 2^16) exactly.
        np.multiply(stream.halves(start + pos, count), scale, out=tmp, dtype=np.uint32)
        np.right_shift(tmp, 16, out=tmp)
        signed = tmp.view(np.int32)
        signed -= v
        out[pos : pos + count] = signed


def stream_slice(seed: bytes, stream: int, start: int, count: int, v: int) -> F64Array:
    """Entries [start, start + count) of one matrix stream, as float64 integers."""
    out = np.empty(count, dtype=np.float64)
    _fill_stream(out, _Stream(seed, stream), start, v)
    return out


def _stream_slices(seed: bytes, stream: int, n: int, v: int, lines: Sequence[int]) -> F64Array:
    for line in lines:
        if not 0 <= line < n:
            raise IndexError(f"index {line} outside 0..{n - 1}")
    out = np.empty((len(lines), n), dtype=np.float64)
    gen = _Stream(seed, stream)
    for k, line in enumerate(lines):
        _fill_stream(out[k], gen, line * n, v)
    return out


def rows_of_a(
    seed: bytes, n: int, profile: Profile, rows: Sequence[int], *, product: int = 0
) -> F64Array:
    """Rows ``rows`` of A (of product ``product``), shape (len(rows), n)."""
    return _stream_slices(seed, stream_of(STREAM_A, product), n, value_bounds(profile, n).a, rows)


def cols_of_b(
    seed: bytes, n: int, profile: Profile, cols: Sequence[int], *, product: int = 0
) -> F64Array:
    """Columns ``cols`` of B (of product ``product``), one per row: shape (len(cols), n)."""
    return _stream_slices(seed, stream_of(STREAM_B, product), n, value_bounds(profile, n).b, cols)


def block_of_a(
    seed: bytes,
    n: int,
    profile: Profile,
    start: int,
    stop: int,
    *,
    threads: int = 2,
    product: int = 0,
) -> F64Array:
    """Rows start..stop-1 of A (one contiguous slice of the stream), shape (stop - start, n)."""
    if not 0 <= start <= stop <= n:
        raise IndexError(f"rows {start}..{stop} outside 0..{n}")
    out = np.empty((stop - start) * n, dtype=np.float64)
    v = value_bounds(profile, n).a
    _fill(out, seed, stream_of(STREAM_A, product), start * n, v, threads)
    return out.reshape(stop - start, n)


def _fill(flat: F64Array, seed: bytes, stream: int, start: int, v: int, threads: int) -> None:
    if threads < 2 or flat.size < _PARALLEL_MIN:
        _fill_stream(flat, _Stream(seed, stream), start, v)
        return
    # Philox and the ufuncs release the GIL: two halves fill in parallel.
    half = flat.size // 2
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = [
            pool.submit(_fill_stream, flat[:half], _Stream(seed, stream), start, v),
            pool.submit(_fill_stream, flat[half:], _Stream(seed, stream), start + half, v),
        ]
        for part in parts:
            part.result()


def _checked_flat(out: F64Array, n: int) -> F64Array:
    if out.shape != (n, n) or not out.flags.c_contiguous or out.dtype != np.float64:
        raise ValueError(f"expected a C-contiguous float64 ({n}, {n}) array")
    return out.reshape(n * n)


def fill_a(
    out: F64Array, seed: bytes, profile: Profile, *, product: int = 0, threads: int = 2
) -> None:
    """Write A (of product ``product``) into the preallocated (n, n) array ``out``."""
    n = out.shape[0]
    flat = _checked_flat(out, n)
    _fill(flat, seed, stream_of(STREAM_A, product), 0, value_bounds(profile, n).a, threads)


def fill_b_columns(
    out: F64Array, seed: bytes, profile: Profile, *, product: int = 0, threads: int = 2
) -> None:
    """Write Bᵀ (of product ``product``) into the preallocated (n, n) array ``out``."""
    n = out.shape[0]
    flat = _checked_flat(out, n)
    _fill(flat, seed, stream_of(STREAM_B, product), 0, value_bounds(profile, n).b, threads)


def full_a(
    seed: bytes, n: int, profile: Profile, *, threads: int = 2, product: int = 0
) -> F64Array:
    """All of A, row-major, shape (n, n)."""
    return block_of_a(seed, n, profile, 0, n, threads=threads, product=product)


def full_b_columns(
    seed: bytes, n: int, profile: Profile, *, threads: int = 2, product: int = 0
) -> F64Array:
    """Bᵀ: row j is column j of B (so ``full_b_columns(...).T`` is B, Fortran-ordered)."""
    out = np.empty((n, n), dtype=np.float64)
    fill_b_columns(out, seed, profile, product=product, threads=threads)
    return out


def full_b(seed: bytes, n: int, profile: Profile, *, product: int = 0) -> F64Array:
    """All of B, shape (n, n), a Fortran-ordered view."""
    return full_b_columns(seed, n, profile, product=product).T
