"""Row slices: a reveal carries the segments that hold the sampled columns and the other
segments' digests. Honest slices give the row digest and the entries; every forgery of a
slice fails, and a full-size challenge's reveal fits 300 KB."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.proof import (
    Profile,
    Reveal,
    RevealRequest,
    VerdictReason,
    answer_reveal,
    commit,
    issue_challenge,
    solve,
    verify,
)
from byteleap.proof.backends import Product, tree_of_rows
from byteleap.proof.challenge import Solution
from byteleap.proof.merkle import SEGMENT_BYTES, TreeKeys, row_digest, segment_digests
from byteleap.proof.slices import (
    revealed_segments,
    slice_digest,
    slice_entries,
    slice_row,
    slice_sizes,
)
from byteleap.proof.synthetic import seeded_request, synthesize

from .conftest import Round, hmac_check, hmac_sign

R = VerdictReason


@given(
    n=st.integers(1, 700),
    data=st.data(),
)
def test_a_slice_gives_the_row_digest_and_the_sampled_entries(n: int, data: st.DataObject) -> None:
    row = np.frombuffer(data.draw(st.binary(min_size=4 * n, max_size=4 * n)), dtype="<i4")
    cols = data.draw(st.lists(st.integers(0, n - 1), max_size=12, unique=True))
    sliced, digests = slice_row(row.tobytes(), n, cols)
    assert (len(sliced), len(digests)) == slice_sizes(n, cols)
    assert slice_digest(n, cols, sliced, digests) == row_digest(row.tobytes())
    assert slice_entries(n, cols, sliced).tolist() == row[cols].tolist()


def test_the_revealed_segments_follow_from_n_and_the_columns_alone() -> None:
    # Segments of 128 entries; 600 entries make 4 whole and one of 88.
    assert revealed_segments(600, [599, 5, 130, 131]) == (0, 1, 4)
    assert slice_sizes(600, [599, 5, 130, 131]) == (2 * SEGMENT_BYTES + 88 * 4, 2 * 32)
    assert slice_sizes(600, []) == (0, 5 * 32)


def _round(n: int, cols: tuple[int, ...], solution: Solution | None = None) -> Round:
    """A committed product (exact unless ``solution`` is given) and its reveal for ``cols``."""
    if solution is None:
        solution = solve(issue_challenge(n, Profile.CPU_F64, now=1000.0, ttl_s=60.0))
    spec = solution.spec
    commitment = commit(solution, hmac_sign)
    request = RevealRequest(challenge_id=spec.challenge_id, rows=(3, 7, n - 1), cols=cols)
    return spec, solution, commitment, request, answer_reveal(solution, request)


# n = 640: five whole segments; columns in segments 0, 2 and 4, so 1 and 3 travel as digests.
N, COLS = 640, (5, 300, 639)


def _verdict(rnd: Round, reveal: Reveal | None = None) -> VerdictReason:
    spec, _, commitment, request, honest = rnd
    return verify(
        spec, commitment, request, reveal or honest, now=1000.0, verify_signature=hmac_check
    ).reason


def _forged(rnd: Round, **update: bytes) -> Reveal:
    reveal = rnd[4]
    rows = list(reveal.rows)
    rows[0] = rows[0].model_copy(update=update)
    return reveal.model_copy(update={"rows": tuple(rows)})


def _flip(blob: bytes, at: int) -> bytes:
    out = bytearray(blob)
    out[at] ^= 1
    return bytes(out)


def test_an_honest_slice_verifies_and_carries_two_fifths_of_the_row() -> None:
    rnd = _round(N, COLS)
    assert _verdict(rnd) is R.OK
    row = rnd[4].rows[0]
    assert (len(row.data), len(row.digests)) == (3 * SEGMENT_BYTES, 2 * 32)


@pytest.mark.adversarial
def test_a_changed_entry_in_a_revealed_segment_breaks_the_proof() -> None:
    rnd = _round(N, COLS)
    data = rnd[4].rows[0].data
    sampled = 4 * COLS[0]  # the sampled entry itself, in segment 0
    unsampled = SEGMENT_BYTES + 4 * (300 % 128) + 4  # beside one, in segment 2
    for at in (sampled, unsampled):
        assert _verdict(rnd, _forged(rnd, data=_flip(data, at))) is R.BAD_PROOF


@pytest.mark.adversarial
def test_a_wrong_or_reordered_digest_of_an_unrevealed_segment_breaks_the_proof() -> None:
    rnd = _round(N, COLS)
    digests = rnd[4].rows[0].digests
    assert _verdict(rnd, _forged(rnd, digests=_flip(digests, 40))) is R.BAD_PROOF
    swapped = digests[32:] + digests[:32]
    assert _verdict(rnd, _forged(rnd, digests=swapped)) is R.BAD_PROOF


@pytest.mark.adversarial
def test_revealed_segments_in_another_order_break_the_proof() -> None:
    rnd = _round(N, COLS)
    data = rnd[4].rows[0].data
    moved = (
        data[SEGMENT_BYTES : 2 * SEGMENT_BYTES] + data[:SEGMENT_BYTES] + data[2 * SEGMENT_BYTES :]
    )
    assert _verdict(rnd, _forged(rnd, data=moved)) is R.BAD_PROOF


@pytest.mark.adversarial
def test_a_slice_of_other_segments_or_sizes_is_refused_before_hashing() -> None:
    rnd = _round(N, COLS)
    row = rnd[4].rows[0]
    # A segment given as its digest instead (the miner picking what to show).
    dropped = segment_digests(row.data[:SEGMENT_BYTES])[0]
    short = {"data": row.data[SEGMENT_BYTES:], "digests": dropped + row.digests}
    # The whole row, as reveals were before slices; a digest list cut mid-digest.
    whole = {"data": rnd[1].product.row_bytes(3), "digests": b""}
    cut = {"digests": row.digests[:-1]}
    for update in (short, whole, cut):
        assert _verdict(rnd, _forged(rnd, **update)) is R.WRONG_SHAPE, update.keys()


@pytest.mark.adversarial
def test_a_committed_wrong_entry_in_a_sampled_column_is_a_wrong_value() -> None:
    """The slice carries what was committed: a wrong product passes the proof and fails the
    recomputation, whichever segment the wrong entry sits in."""
    spec = issue_challenge(N, Profile.CPU_F64, now=1000.0, ttl_s=60.0)
    exact = solve(spec).product
    rows = np.stack([np.frombuffer(exact.row_bytes(i), dtype="<i4") for i in range(N)]).copy()
    rows[N - 1, COLS[2]] += 1  # the last row's sampled entry in the last segment
    encoded = rows.astype("<i4")
    tree = tree_of_rows(TreeKeys.for_challenge(spec.challenge_id), encoded)
    rnd = _round(N, COLS, Solution(spec, Product(tree, lambda i: encoded[i].tobytes()), 0.1))
    assert _verdict(rnd) is R.WRONG_VALUE


def test_a_short_last_segment_is_revealed_whole() -> None:
    rnd = _round(600, (1, 599))
    assert _verdict(rnd) is R.OK
    row = rnd[4].rows[0]
    assert len(row.data) == SEGMENT_BYTES + 88 * 4
    assert _verdict(rnd, _forged(rnd, data=row.data[:-4])) is R.WRONG_SHAPE


def test_a_full_size_reveal_fits_300_kb_with_the_columns_in_32_segments() -> None:
    """Issue 18's goal at n = 32768, 8 rows and 32 columns, in the worst case: every column in
    its own segment, so 32 of 256 segments are sent whole (the bench's reveals are random)."""
    n = 32768
    spec = issue_challenge(n, Profile.CUDA_F16, now=1000.0, ttl_s=60.0)
    drawn = seeded_request(b"k" * 32, spec)
    spread = tuple(128 * j + 7 for j in range(0, 256, 8))
    request = drawn.model_copy(update={"cols": spread})
    proof = synthesize(spec, request)
    reveal = proof.reveal()
    wire = reveal.model_dump_json().encode()
    assert len(revealed_segments(n, spread)) == 32
    assert len(wire) <= 300_000, len(wire)
    verdict = verify(
        spec,
        proof.commitment(hmac_sign),
        request,
        reveal,
        now=spec.issued_at,
        verify_signature=hmac_check,
    )
    assert verdict.ok, verdict
