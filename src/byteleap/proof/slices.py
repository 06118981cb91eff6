"""Row slices: what a reveal carries of a sampled row instead of the whole row.

A row is committed through its segments' digests (``merkle``: 128 entries, 512 bytes each).
For a request's columns, a slice is

- ``data``: the segments that hold a sampled column, in ascending order, whole;
- ``digests``: the 32-byte digest of every other segment, in ascending order.

From a slice the verifier recomputes every segment digest it was not given, hence the row
digest, the leaf and the path to the committed root; the sampled entries are read from
``data``. Changing any byte of a revealed segment, or giving a wrong digest for another,
changes the row digest unless BLAKE3 collides, so a slice verifies only if its revealed
entries are the committed ones: the soundness of whole rows, with (at n = 32768, 32 columns)
at most 32 of 256 segments sent. Which segments are revealed follows from (n, columns) alone,
so the message carries no indices a forger could choose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import blake3
import numpy as np
import numpy.typing as npt

from byteleap.proof.merkle import (
    DIGEST_BYTES,
    SEGMENT_BYTES,
    SEGMENT_WORDS,
    digest_of_segments,
    segment_count,
)


def revealed_segments(n: int, cols: Iterable[int]) -> tuple[int, ...]:
    """The segments (ascending) that hold the columns ``cols`` of an n-entry row."""
    return tuple(sorted({c // SEGMENT_WORDS for c in cols if 0 <= c < n}))


def slice_sizes(n: int, cols: Iterable[int]) -> tuple[int, int]:
    """The byte lengths of a slice's ``data`` and ``digests``."""
    segments = revealed_segments(n, cols)
    last = segment_count(n) - 1
    data = sum(_segment_bytes(n, j, last) for j in segments)
    return data, DIGEST_BYTES * (segment_count(n) - len(segments))


def slice_row(row: bytes, n: int, cols: Iterable[int]) -> tuple[bytes, bytes]:
    """The slice (data, digests) of an encoded n-entry row for ``cols``."""
    if len(row) != 4 * n:
        raise ValueError(f"row holds {len(row)} bytes, not {4 * n}")
    revealed = revealed_segments(n, cols)
    view = memoryview(row)
    data = b"".join(view[j * SEGMENT_BYTES : (j + 1) * SEGMENT_BYTES] for j in revealed)
    others = sorted(set(range(segment_count(n))).difference(revealed))
    digests = b"".join(
        blake3.blake3(view[j * SEGMENT_BYTES : (j + 1) * SEGMENT_BYTES]).digest() for j in others
    )
    return data, digests


def slice_digest(n: int, cols: Sequence[int], data: bytes, digests: bytes) -> bytes | None:
    """The row digest a slice stands for, or None when its lengths do not fit (n, cols)."""
    if (len(data), len(digests)) != slice_sizes(n, cols):
        return None
    revealed = revealed_segments(n, cols)
    pieces: list[bytes | memoryview] = []
    data_view, digest_view = memoryview(data), memoryview(digests)
    previous = -1
    for position, j in enumerate(revealed):
        # The digests of the segments between two revealed ones come as one run.
        skipped = j - previous - 1
        start = (previous + 1 - position) * DIGEST_BYTES
        pieces.append(digest_view[start : start + skipped * DIGEST_BYTES])
        segment = data_view[position * SEGMENT_BYTES : (position + 1) * SEGMENT_BYTES]
        pieces.append(blake3.blake3(segment).digest())
        previous = j
    pieces.append(digest_view[(previous + 1 - len(revealed)) * DIGEST_BYTES :])
    return digest_of_segments(b"".join(pieces))


def slice_entries(n: int, cols: Sequence[int], data: bytes) -> npt.NDArray[np.int32]:
    """The entries at ``cols`` (in their order) read from a slice's ``data``."""
    position = {j: p for p, j in enumerate(revealed_segments(n, cols))}
    words = np.frombuffer(data, dtype="<i4")
    at = [position[c // SEGMENT_WORDS] * SEGMENT_WORDS + c % SEGMENT_WORDS for c in cols]
    return words[at]


def _segment_bytes(n: int, j: int, last: int) -> int:
    return SEGMENT_BYTES if j < last else 4 * n - last * SEGMENT_BYTES
