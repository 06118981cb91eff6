"""The torch BLAKE3 matches the blake3 package bit for bit; numpy and torch trees agree."""

from __future__ import annotations

import os

import blake3
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from byteleap.proof import Profile, issue_challenge, solve  # noqa: E402
from byteleap.proof.torch_blake3 import hash_words, row_digests, words_to_bytes  # noqa: E402


@pytest.mark.parametrize("n_words", [1, 15, 16, 17, 255, 256, 257, 512, 768, 1000, 1280, 2048])
def test_matches_blake3_package(n_words: int) -> None:
    rows = np.frombuffer(os.urandom(3 * 4 * n_words), dtype="<i4").reshape(3, n_words)
    words = torch.from_numpy(rows.astype(np.int64) & 0xFFFFFFFF)
    got = words_to_bytes(hash_words(words, 4 * n_words))
    want = b"".join(blake3.blake3(r.tobytes()).digest() for r in rows)
    assert got == want


def test_keyed_mode_matches() -> None:
    key = os.urandom(32)
    data = np.frombuffer(os.urandom(40), dtype="<u4").astype(np.int64)[None, :]
    got = words_to_bytes(hash_words(torch.from_numpy(data), 40, key=key))
    assert got == blake3.blake3(data.astype("<u4").tobytes(), key=key).digest()


def test_row_digests_of_int32_rows() -> None:
    rows = torch.randint(-(2**31), 2**31 - 1, (5, 300), dtype=torch.int32)
    got = row_digests(rows, batch_rows=2)
    assert got == [blake3.blake3(r.numpy().astype("<i4").tobytes()).digest() for r in rows]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("profile", list(Profile))
def test_cuda_path_gives_the_cpu_root(profile: Profile) -> None:
    spec = issue_challenge(512, profile, now=0.0, ttl_s=10.0)
    assert solve(spec, "torch", "cuda").root == solve(spec, "numpy").root
