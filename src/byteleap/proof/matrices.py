"""Counter-based generation of the challenge matrices A and B.

Each matrix is one Philox-4×64 stream: the key is the first 128 bits of the 256-bit seed, the
counter's upper two words hold the other 128 bits and its second word names the matrix, so all
256 seed bits select the stream. Block b of a stream is the Philox output for the counter
(b + 1, matrix, seed[16:24], seed[24:32]). Every 64-bit draw is split into four little-endian
16-bit words u, and entry = floor(u·(2v+1) / 2¹⁶) − v, an integer in [-v, v]. Entry k of a
stream lies in block k // 16, so any slice starts in O(1) by setting the counter.

A is stored row-major (entry k = A[k // n, k % n]); B is stored column-major
(entry k = B[k % n, k // n]), so one row of A and one column of B are each one contiguous
slice, generated alone in O(n).
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import numpy.typing as npt

from byteleap.proof.profiles import Profile, value_bound

SEED_BYTES = 32
STREAM_A = 0xA
STREAM_B = 0xB
_VALUES_PER_BLOCK = 16  # one Philox block = 4 × uint64 = 16 × uint16
# Below this many entries a second thread costs more than it saves.
_PARALLEL_MIN = 1 << 20

F64Array = npt.NDArray[np.float64]


def _philox(seed: bytes, stream: int, block: int) -> np.random.Philox:
    if len(seed) != SEED_BYTES:
        raise ValueError(f"seed must be {SEED_BYTES} bytes, got {len(seed)}")
    words = np.frombuffer(seed, dtype="<u8").astype(np.uint64)
    # Built as uint64 explicitly: a Python list with words ≥ 2^63 would go through float64.
    counter = np.array([block, stream, 0, 0], dtype=np.uint64)
    counter[2:] = words[2:]
    return np.random.Philox(key=words[:2].copy(), counter=counter)


def _fill_stream(out: F64Array, seed: bytes, stream: int, start: int, v: int) -> None:
    """Write entries [start, start + out.size) of ``stream`` into the flat array ``out``."""
    block, skip = divmod(start, _VALUES_PER_BLOCK)
    blocks = -(-(skip + out.size) // _VALUES_PER_BLOCK)
    # numpy's Philox emits counter + 1 first: stream block b is the block of counter b + 1.
    bitgen = _philox(seed, stream, block)
    raw = bitgen.random_raw(blocks * 4).astype("<u8", copy=False)
    halves = raw.view("<u2")[skip : skip + out.size]
    # u·(2v+1) < 2^32 and the scale is a power of two: every float step below is exact.
    np.multiply(halves, (2 * v + 1) / 65536.0, out=out)
    np.floor(out, out=out)
    out -= v


def stream_slice(seed: bytes, stream: int, start: int, count: int, v: int) -> F64Array:
    """Entries [start, start + count) of one matrix stream, as float64 integers."""
    out = np.empty(count, dtype=np.float64)
    _fill_stream(out, seed, stream, start, v)
    return out


def _stream_slices(
    seed: bytes, stream: int, n: int, profile: Profile, lines: Sequence[int]
) -> F64Array:
    v = value_bound(profile, n)
    out = np.empty((len(lines), n), dtype=np.float64)
    for k, line in enumerate(lines):
        if not 0 <= line < n:
            raise IndexError(f"index {line} outside 0..{n - 1}")
        _fill_stream(out[k], seed, stream, line * n, v)
    return out


def rows_of_a(seed: bytes, n: int, profile: Profile, rows: Sequence[int]) -> F64Array:
    """Rows ``rows`` of A, shape (len(rows), n)."""
    return _stream_slices(seed, STREAM_A, n, profile, rows)


def cols_of_b(seed: bytes, n: int, profile: Profile, cols: Sequence[int]) -> F64Array:
    """Columns ``cols`` of B, one per row of the result: shape (len(cols), n)."""
    return _stream_slices(seed, STREAM_B, n, profile, cols)


def _full_stream(seed: bytes, stream: int, n: int, profile: Profile) -> F64Array:
    v = value_bound(profile, n)
    flat = np.empty(n * n, dtype=np.float64)
    if flat.size < _PARALLEL_MIN:
        _fill_stream(flat, seed, stream, 0, v)
        return flat.reshape(n, n)
    # Philox and the ufuncs release the GIL: two halves fill in parallel.
    half = (flat.size // 2) // _VALUES_PER_BLOCK * _VALUES_PER_BLOCK
    with ThreadPoolExecutor(max_workers=2) as pool:
        parts = [
            pool.submit(_fill_stream, flat[:half], seed, stream, 0, v),
            pool.submit(_fill_stream, flat[half:], seed, stream, half, v),
        ]
        for part in parts:
            part.result()
    return flat.reshape(n, n)


def full_a(seed: bytes, n: int, profile: Profile) -> F64Array:
    """All of A, row-major, shape (n, n)."""
    return _full_stream(seed, STREAM_A, n, profile)


def full_b_columns(seed: bytes, n: int, profile: Profile) -> F64Array:
    """Bᵀ: row j is column j of B (so ``full_b_columns(...).T`` is B, Fortran-ordered)."""
    return _full_stream(seed, STREAM_B, n, profile)


def full_b(seed: bytes, n: int, profile: Profile) -> F64Array:
    """All of B, shape (n, n), a Fortran-ordered view."""
    return full_b_columns(seed, n, profile).T
