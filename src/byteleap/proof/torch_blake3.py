"""BLAKE3 as vectorised torch integer ops, so rows are hashed where they lie (CUDA or CPU).

Words are uint32 values held in int64 tensors (masked after every add) since torch has no
full unsigned 32-bit arithmetic. All rows share one length, so every row has the same chunk
tree and each step runs batched over rows × chunks. Checked bit for bit against the ``blake3``
package in tests. This is the reference GPU path, not a tuned kernel: expect it to cost more
than the product itself until it is fused (``torch.compile`` or a Triton kernel).
"""

from __future__ import annotations

import torch

from byteleap.proof.merkle import MerkleTree, TreeKeys

MASK = 0xFFFFFFFF
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
PERMUTATION = (2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8)
CHUNK_START, CHUNK_END, PARENT, ROOT, KEYED_HASH = 1, 2, 4, 8, 16
CHUNK_WORDS, BLOCK_WORDS = 256, 16

Words = list[torch.Tensor]


def _rotr(x: torch.Tensor, r: int) -> torch.Tensor:
    return ((x >> r) | (x << (32 - r))) & MASK


def _g(v: Words, a: int, b: int, c: int, d: int, x: torch.Tensor, y: torch.Tensor) -> None:
    v[a] = (v[a] + v[b] + x) & MASK
    v[d] = _rotr(v[d] ^ v[a], 16)
    v[c] = (v[c] + v[d]) & MASK
    v[b] = _rotr(v[b] ^ v[c], 12)
    v[a] = (v[a] + v[b] + y) & MASK
    v[d] = _rotr(v[d] ^ v[a], 8)
    v[c] = (v[c] + v[d]) & MASK
    v[b] = _rotr(v[b] ^ v[c], 7)


def compress(cv: Words, block: Words, counter: torch.Tensor, length: int, flags: int) -> Words:
    """The BLAKE3 compression of a batch; returns the 8-word chaining value."""
    like = block[0]
    v = [*cv, *(torch.full_like(like, w) for w in IV[:4])]
    v += [
        counter & MASK,
        counter >> 32,
        torch.full_like(like, length),
        torch.full_like(like, flags),
    ]
    m = list(block)
    for rnd in range(7):
        _g(v, 0, 4, 8, 12, m[0], m[1])
        _g(v, 1, 5, 9, 13, m[2], m[3])
        _g(v, 2, 6, 10, 14, m[4], m[5])
        _g(v, 3, 7, 11, 15, m[6], m[7])
        _g(v, 0, 5, 10, 15, m[8], m[9])
        _g(v, 1, 6, 11, 12, m[10], m[11])
        _g(v, 2, 7, 8, 13, m[12], m[13])
        _g(v, 3, 4, 9, 14, m[14], m[15])
        if rnd < 6:
            m = [m[i] for i in PERMUTATION]
    return [v[i] ^ v[i + 8] for i in range(8)]


def _chunk_cvs(words: torch.Tensor, nbytes: int, key: tuple[int, ...], flag: int) -> torch.Tensor:
    """CVs of every chunk: words (rows, chunks, 256) → (rows, chunks, 8); root flag if 1 chunk."""
    rows, chunks, _ = words.shape
    counter = torch.arange(chunks, device=words.device, dtype=torch.int64).expand(rows, chunks)
    cv: Words = [torch.full((rows, chunks), k, device=words.device, dtype=torch.int64) for k in key]
    last_chunk_bytes = nbytes - (chunks - 1) * 1024
    for b in range(16):
        start = 64 * b
        if start >= 1024 or (start >= last_chunk_bytes and chunks == 1):
            break
        block = [words[:, :, b * 16 + w] for w in range(16)]
        full_len = min(64, max(0, last_chunk_bytes - start))
        is_last_full = b == 15
        is_last_tail = start < last_chunk_bytes <= start + 64
        flags = flag | (CHUNK_START if b == 0 else 0)
        if chunks == 1:
            f = flags | ((CHUNK_END | ROOT) if is_last_tail else 0)
            cv = compress(cv, block, counter, full_len, f)
            continue
        new = compress(cv, block, counter, 64, flags | (CHUNK_END if is_last_full else 0))
        if start < last_chunk_bytes:
            tail_flags = flags | (CHUNK_END if is_last_tail else 0)
            tail = compress(
                [c[:, -1:] for c in cv],
                [x[:, -1:] for x in block],
                counter[:, -1:],
                full_len,
                tail_flags,
            )
            new = [torch.cat([n_[:, :-1], t], dim=1) for n_, t in zip(new, tail, strict=True)]
        else:  # the last chunk already ended: keep its value
            new = [torch.cat([n_[:, :-1], c[:, -1:]], dim=1) for n_, c in zip(new, cv, strict=True)]
        cv = new
    return torch.stack(cv, dim=-1)


def hash_words(words: torch.Tensor, nbytes: int, key: bytes | None = None) -> torch.Tensor:
    """BLAKE3 (or keyed BLAKE3) of each row of ``words`` (rows, nbytes/4) → (rows, 8) words."""
    if nbytes % 4 or nbytes == 0 or words.shape[1] * 4 != nbytes:
        raise ValueError("rows must be whole, non-empty 32-bit words")
    key_words = (
        IV
        if key is None
        else tuple(int.from_bytes(key[i : i + 4], "little") for i in range(0, 32, 4))
    )
    flag = 0 if key is None else KEYED_HASH
    rows = words.shape[0]
    chunks = -(-nbytes // 1024)
    padded = torch.zeros((rows, chunks * CHUNK_WORDS), dtype=torch.int64, device=words.device)
    padded[:, : words.shape[1]] = words
    level = _chunk_cvs(padded.view(rows, chunks, CHUNK_WORDS), nbytes, key_words, flag)
    while level.shape[1] > 1:
        pairs = level.shape[1] // 2
        left, right = level[:, 0 : 2 * pairs : 2], level[:, 1 : 2 * pairs : 2]
        block = [*left.unbind(-1), *right.unbind(-1)]
        cv = [torch.full_like(block[0], k) for k in key_words]
        zero = torch.zeros_like(block[0])
        flags = flag | PARENT | (ROOT if level.shape[1] == 2 else 0)
        parents = torch.stack(compress(cv, block, zero, 64, flags), dim=-1)
        if level.shape[1] % 2:
            parents = torch.cat([parents, level[:, -1:]], dim=1)
        level = parents
    return level[:, 0]


def int32_rows_as_words(rows: torch.Tensor) -> torch.Tensor:
    """int32 rows → their little-endian uint32 words, as int64."""
    return rows.to(torch.int64) & MASK


def words_to_bytes(words: torch.Tensor) -> bytes:
    flat = words.to(torch.int64).cpu().flatten().tolist()
    return b"".join(int(w).to_bytes(4, "little") for w in flat)


def row_digests(rows: torch.Tensor, batch_rows: int = 1024) -> list[bytes]:
    """BLAKE3 digest of each int32 row, computed on the rows' device in batches."""
    n = rows.shape[1]
    out: list[bytes] = []
    for start in range(0, rows.shape[0], batch_rows):
        words = hash_words(int32_rows_as_words(rows[start : start + batch_rows]), 4 * n)
        raw = words_to_bytes(words)
        out += [raw[32 * k : 32 * k + 32] for k in range(words.shape[0])]
    return out


def tree_on_device(keys: TreeKeys, rows: torch.Tensor) -> MerkleTree:
    """The Merkle tree of int32 rows, row digests computed on the device."""
    return MerkleTree.from_row_digests(keys, row_digests(rows))
