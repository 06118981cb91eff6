"""Wire messages of the challenge protocol and the verdict.

Bytes travel as lowercase hex (seeds, roots, proofs, signatures) or base64 (row data). Every
message carries a ``type`` tag; ``ProofMessage`` is the tagged union one adapter parses.
"""

from __future__ import annotations

import base64
import binascii
import math
from enum import StrEnum
from typing import Annotated, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    ValidationError,
    model_serializer,
)

from byteleap.proof.errors import MalformedMessageError, OversizedMessageError
from byteleap.proof.merkle import DIGEST_BYTES, SEGMENT_BYTES, segment_count
from byteleap.proof.profiles import Profile

CHALLENGE_ID_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
MAX_SIGNATURE_BYTES = 256
MAX_PROOF_DEPTH = 64
#: The most independent products one challenge may hold. Sizing fills a GPU's memory with
#: several products where one n under the profile's exactness bound cannot (``sizing``); 64
#: lets a 24–141 GB card reach residency at expected times well under a second, and the
#: bound keeps a spec's work finite.
MAX_PRODUCTS = 64


def _hex_bytes(size: int | None, max_size: int | None = None) -> PlainValidator:
    def parse(value: object) -> bytes:
        if isinstance(value, bytes):
            raw = value
        elif isinstance(value, str) and len(value) <= 2 * (max_size or size or 0):
            try:
                raw = bytes.fromhex(value)
            except ValueError as exc:
                raise ValueError("not hex") from exc
        else:
            raise ValueError("expected a hex string of bounded length")
        if size is not None and len(raw) != size:
            raise ValueError(f"expected {size} bytes, got {len(raw)}")
        return raw

    return PlainValidator(parse)


def _b64_parse(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("expected a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc


_hex_out = PlainSerializer(lambda b: b.hex(), return_type=str)
Hash32 = Annotated[bytes, _hex_bytes(32), _hex_out]
Seed = Annotated[bytes, _hex_bytes(32), _hex_out]
Signature = Annotated[bytes, _hex_bytes(None, MAX_SIGNATURE_BYTES), _hex_out]
RowBytes = Annotated[
    bytes,
    PlainValidator(_b64_parse),
    PlainSerializer(lambda b: base64.b64encode(b).decode(), return_type=str),
]
ChallengeId = Annotated[str, Field(pattern=CHALLENGE_ID_PATTERN)]
FiniteTime = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]


class _Message(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChallengeSpec(_Message):
    """One challenge: ``products`` independent n×n products A_j·B_j of one seed, committed as
    one tree of products·n rows (global row r is row r mod n of product r div n)."""

    type: Literal["challenge"] = "challenge"
    challenge_id: ChallengeId
    seed: Seed
    n: int = Field(ge=1)
    profile: Profile
    issued_at: FiniteTime
    deadline: FiniteTime
    products: int = Field(default=1, ge=1, le=MAX_PRODUCTS)

    @model_serializer(mode="wrap")
    def _omit_one_product(self, handler: SerializerFunctionWrapHandler) -> dict[str, object]:
        # A one-product spec serialises as before the field existed, so workers that forbid
        # unknown fields keep accepting it; a worker that cannot solve several products
        # refuses such a spec instead of committing to product 0 alone.
        data: dict[str, object] = handler(self)
        if self.products == 1:
            data.pop("products", None)
        return data

    @property
    def row_count(self) -> int:
        """Leaves of the committed tree: products·n."""
        return self.products * self.n

    @property
    def work_flops(self) -> int:
        """Multiply-adds counted as two flops: 2·products·n³."""
        return 2 * self.products * self.n**3


class Commitment(_Message):
    type: Literal["commitment"] = "commitment"
    challenge_id: ChallengeId
    root: Hash32
    compute_s: FiniteTime
    signature: Signature


class RevealRequest(_Message):
    """The sampled indices. The worker needs ``cols`` to know which segments to reveal; it
    learns them only after its commitment, which is what binds it."""

    type: Literal["reveal_request"] = "reveal_request"
    challenge_id: ChallengeId
    rows: tuple[int, ...]
    cols: tuple[int, ...]


class RevealedRow(_Message):
    """A sampled row as a slice (``proof.slices``): the segments that hold the request's
    columns and the digests of the others, which together give its row digest."""

    index: int = Field(ge=0)
    data: RowBytes  # the revealed 512-byte segments, int32 little-endian, ascending
    digests: RowBytes  # the other segments' 32-byte digests, ascending
    proof: tuple[Hash32, ...] = Field(max_length=MAX_PROOF_DEPTH)


class Reveal(_Message):
    type: Literal["reveal"] = "reveal"
    challenge_id: ChallengeId
    rows: tuple[RevealedRow, ...] = Field(max_length=1024)


ProofMessage = Annotated[
    ChallengeSpec | Commitment | RevealRequest | Reveal, Field(discriminator="type")
]
_MESSAGE_ADAPTER: TypeAdapter[ProofMessage] = TypeAdapter(ProofMessage)


class VerdictReason(StrEnum):
    OK = "ok"
    BAD_PROOF = "bad_proof"
    WRONG_VALUE = "wrong_value"
    WRONG_SHAPE = "wrong_shape"
    LATE = "late"
    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    REPLAYED = "replayed"
    WRONG_CHALLENGE = "wrong_challenge"
    BAD_SIGNATURE = "bad_signature"


class Verdict(_Message):
    ok: bool
    reason: VerdictReason
    detail: str = ""
    row: int | None = None
    col: int | None = None

    @classmethod
    def passed(cls) -> Verdict:
        return cls(ok=True, reason=VerdictReason.OK)

    @classmethod
    def failed(
        cls, reason: VerdictReason, detail: str, *, row: int | None = None, col: int | None = None
    ) -> Verdict:
        return cls(ok=False, reason=reason, detail=detail, row=row, col=col)


_M = TypeVar("_M", bound=_Message)


def parse_message(raw: bytes | str, *, max_bytes: int) -> ProofMessage:
    """Parse any proof message; oversized or malformed input raises a typed ``ProofError``."""
    if len(raw) > max_bytes:
        raise OversizedMessageError(
            f"message of {len(raw)} bytes exceeds {max_bytes}", size=len(raw), limit=max_bytes
        )
    try:
        return _MESSAGE_ADAPTER.validate_json(raw)
    except ValidationError as exc:
        raise MalformedMessageError(
            f"malformed proof message: {exc.error_count()} error(s)",
            errors=exc.errors(include_url=False, include_input=False),
        ) from exc


def _parse_as(kind: type[_M], raw: bytes | str, max_bytes: int) -> _M:
    message = parse_message(raw, max_bytes=max_bytes)
    if not isinstance(message, kind):
        raise MalformedMessageError(f"expected {kind.__name__}, got {type(message).__name__}")
    return message


def parse_reveal(raw: bytes | str, *, max_bytes: int) -> Reveal:
    return _parse_as(Reveal, raw, max_bytes)


def parse_commitment(raw: bytes | str, *, max_bytes: int = 4096) -> Commitment:
    return _parse_as(Commitment, raw, max_bytes)


def parse_challenge(raw: bytes | str, *, max_bytes: int = 4096) -> ChallengeSpec:
    return _parse_as(ChallengeSpec, raw, max_bytes)


def reveal_size_limit(n: int, rows: int, cols: int) -> int:
    """A generous byte limit for a reveal of ``rows`` rows of an n-wide product sampled at
    ``cols`` columns.

    It holds for any number of products: a revealed row is a slice of n entries whatever
    product it belongs to (at most one 512-byte segment per column, and a 32-byte digest per
    segment, base64), and its proof is counted at ``MAX_PROOF_DEPTH`` siblings, beyond the
    ⌈log₂(products·n)⌉ ≤ 24 of the largest challenge.
    """
    slice_bytes = min(4 * n, SEGMENT_BYTES * cols) + DIGEST_BYTES * segment_count(n)
    per_row = math.ceil(slice_bytes / 3) * 4 + 70 * MAX_PROOF_DEPTH + 96
    return rows * per_row + 1024
