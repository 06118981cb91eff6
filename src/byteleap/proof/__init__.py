"""Proof of compute: exact matrix-multiplication challenges with commit-then-sample checks.

Pure protocol code (no network, no database): profiles and value bounds, counter-based matrix
generation, the row-leaf Merkle tree, the wire messages, the worker's solve/commit/reveal and
the validator's issue/draw/verify. See DESIGN.md §3.
"""

from byteleap.proof.backends import Backend, run_target
from byteleap.proof.challenge import (
    Solution,
    answer_reveal,
    commit,
    draw_reveal,
    issue_challenge,
    signing_payload,
    solve,
)
from byteleap.proof.cheats import Cheat, cheat_solution
from byteleap.proof.errors import (
    BackendError,
    InexactSizeError,
    MalformedMessageError,
    OversizedMessageError,
    ProofError,
)
from byteleap.proof.matrices import cols_of_b, full_a, full_b, full_b_columns, rows_of_a
from byteleap.proof.merkle import MerkleTree, TreeKeys
from byteleap.proof.messages import (
    ChallengeSpec,
    Commitment,
    ProofMessage,
    Reveal,
    RevealedRow,
    RevealRequest,
    Verdict,
    VerdictReason,
    parse_challenge,
    parse_commitment,
    parse_message,
    parse_reveal,
    reveal_size_limit,
)
from byteleap.proof.product import Product
from byteleap.proof.profiles import Profile, StreamBounds, max_n, value_bounds
from byteleap.proof.sizing import ChallengeSize, deadline_s, size_challenge, time_range
from byteleap.proof.verify import ReplayGuard, SignatureCheck, verify

__all__ = [
    "Backend",
    "BackendError",
    "ChallengeSize",
    "ChallengeSpec",
    "Cheat",
    "Commitment",
    "InexactSizeError",
    "MalformedMessageError",
    "MerkleTree",
    "OversizedMessageError",
    "Product",
    "Profile",
    "ProofError",
    "ProofMessage",
    "ReplayGuard",
    "Reveal",
    "RevealRequest",
    "RevealedRow",
    "SignatureCheck",
    "Solution",
    "StreamBounds",
    "TreeKeys",
    "Verdict",
    "VerdictReason",
    "answer_reveal",
    "cheat_solution",
    "cols_of_b",
    "commit",
    "deadline_s",
    "draw_reveal",
    "full_a",
    "full_b",
    "full_b_columns",
    "issue_challenge",
    "max_n",
    "parse_challenge",
    "parse_commitment",
    "parse_message",
    "parse_reveal",
    "reveal_size_limit",
    "rows_of_a",
    "run_target",
    "signing_payload",
    "size_challenge",
    "solve",
    "time_range",
    "value_bounds",
    "verify",
]
