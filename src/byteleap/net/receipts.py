"""Lease receipts: the signed, verifiable input of the validator's 70% lease score.

A gateway bills each lease period per (lease, worker) and issues a :class:`LeaseReceipt`:
it signs it with its hotkey (:func:`sign_as_gateway`), the miner checks it and countersigns
(:func:`countersign_as_miner`), and any validator accepts it only through
:func:`verify_receipt`: both sr25519 signatures good, the gateway a validator on the
metagraph, the miner registered, the period fresh, the arithmetic exact and the id unseen.
:func:`byteleap.validator.lease_revenue.lease_revenue` turns accepted receipts into the
records scoring reads.

Pure: no network, no clock (``now`` is passed in), no store.

**Canonical signing bytes (version 1).** The *body* is every field except the two
signatures, serialised as JSON with sorted keys, no whitespace and ASCII only. Every body
value is an integer or a printable-ASCII string, so the bytes are the same in any language::

    gateway signs:  b"byteleap/lease-receipt/v1/gateway\\n" + body
    miner signs:    b"byteleap/lease-receipt/v1/miner\\n" + body + b"\\n" + gateway_signature_hex

The domain tags keep these signatures from being valid for any other byteleap message and
keep a gateway signature from passing as a miner's; the miner's covers the gateway's
signature, so a miner cannot countersign a receipt the gateway did not issue.

Money is integer micro-units (1e-6 of ``currency``): ``amount_micro = seconds × gpu_count ×
unit_price_micro`` exactly. The unit price is inside the signed receipt so any validator can
check the arithmetic without the gateway's price list. ``lease_id`` is tenant-anonymous:
:func:`anonymous_lease_id` is a keyed hash only the gateway can link back to its lease.
``receipt_id`` is derived from (lease, miner, worker, period) by :func:`receipt_id_for`, so a
gateway that re-bills the same period after a restart reissues the same id, and a validator
counts it once.

Errors: :class:`ReceiptError` (a signing precondition failed, or revenue in mixed
currencies); verification never raises, it returns a :class:`ReceiptVerdict`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Set
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Literal, Protocol, Self

from bittensor import sp_core
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from byteleap.errors import ByteleapError
from byteleap.protocol.ids import HexId

__all__ = [
    "GATEWAY_DOMAIN",
    "MICRO",
    "MINER_DOMAIN",
    "LeaseReceipt",
    "ReceiptError",
    "ReceiptRejection",
    "ReceiptSigner",
    "ReceiptVerdict",
    "anonymous_lease_id",
    "countersign_as_miner",
    "gateway_payload",
    "miner_payload",
    "new_receipt",
    "receipt_id_for",
    "sign_as_gateway",
    "verify_receipt",
    "verify_receipts",
]

GATEWAY_DOMAIN = b"byteleap/lease-receipt/v1/gateway\n"
MINER_DOMAIN = b"byteleap/lease-receipt/v1/miner\n"
_LEASE_ID_DOMAIN = b"byteleap/lease-id/v1\x00"
_RECEIPT_ID_DOMAIN = b"byteleap/receipt-id/v1\x00"

MICRO = 1_000_000
MAX_MICRO = 2**63 - 1  # fits a signed BIGINT column
MAX_UNIX = 10**11  # year ~5138: rejects nonsense without guessing a horizon
_SIGNATURES = frozenset({"gateway_signature", "miner_signature"})


class ReceiptError(ByteleapError):
    """A receipt could not be signed or summed (reason says why)."""

    reason = "receipt"


def _ss58(value: str) -> str:
    try:
        sp_core.ss58_decode(value)
    except ValueError as exc:
        raise ValueError(f"not an ss58 address: {exc}") from None
    return value


SignatureHex = Annotated[str, Field(pattern=r"^[0-9a-f]{128}$")]
Ss58 = Annotated[str, Field(min_length=46, max_length=64), AfterValidator(_ss58)]
# Printable ASCII only: the canonical JSON then has one spelling for every value.
Label = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x20-\x7e]+$")]
UnixSeconds = Annotated[int, Field(ge=0, le=MAX_UNIX)]
Micro = Annotated[int, Field(ge=0, le=MAX_MICRO)]


class LeaseReceipt(BaseModel):
    """One billed period of one lease on one worker (see the module docstring for the bytes)."""

    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)

    version: Literal[1] = 1
    receipt_id: HexId
    lease_id: HexId  # tenant-anonymous, see anonymous_lease_id
    netuid: Annotated[int, Field(ge=0, le=65_535)]
    gateway_hotkey: Ss58
    miner_hotkey: Ss58
    worker_id: Label
    gpu_model: Label
    gpu_count: Annotated[int, Field(ge=1, le=1024)]
    period_start: UnixSeconds
    period_end: UnixSeconds
    seconds: Annotated[int, Field(ge=1, le=MAX_UNIX)]  # billed wall seconds in the period
    unit_price_micro: Micro  # per GPU-second
    amount_micro: Micro
    currency: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{1,15}$")]
    gateway_signature: SignatureHex | None = None
    miner_signature: SignatureHex | None = None

    @model_validator(mode="after")
    def _period(self) -> Self:
        if self.period_end <= self.period_start:
            raise ValueError("period_end must be after period_start")
        if self.seconds > self.period_end - self.period_start:
            raise ValueError("seconds exceed the period")
        return self

    def body(self) -> bytes:
        """The canonical serialisation of every field but the signatures."""
        fields = self.model_dump(mode="json", exclude=set(_SIGNATURES))
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode(
            "ascii"
        )


_FIELDS = tuple(LeaseReceipt.model_fields)


class ReceiptSigner(Protocol):
    """What signs a receipt: a ``bittensor.sp_core.Keypair`` (or a Wallet's hotkey) fits."""

    @property
    def ss58_address(self) -> str: ...

    @property
    def crypto_type(self) -> int: ...

    def sign(self, message: bytes) -> bytes: ...


def anonymous_lease_id(lease_id: str, secret: bytes) -> str:
    """A stable id for a lease that names neither tenant nor lease without ``secret``."""
    if len(secret) < 16:
        raise ReceiptError("the lease-id secret needs at least 16 bytes", reason="weak_secret")
    mac = hmac.new(secret, _LEASE_ID_DOMAIN + lease_id.encode("utf-8"), hashlib.sha256)
    return mac.hexdigest()[:32]


def receipt_id_for(
    lease_id: str, miner_hotkey: str, worker_id: str, period_start: int, period_end: int
) -> str:
    """The one id a given (lease, miner, worker, period) can have."""
    parts = [lease_id, miner_hotkey, worker_id, str(period_start), str(period_end)]
    # Length-prefixed so no two tuples share an encoding.
    data = b"".join(len(p.encode()).to_bytes(4, "big") + p.encode() for p in parts)
    return hashlib.blake2b(_RECEIPT_ID_DOMAIN + data, digest_size=16).hexdigest()


def new_receipt(
    *,
    lease_id: str,
    netuid: int,
    gateway_hotkey: str,
    miner_hotkey: str,
    worker_id: str,
    gpu_model: str,
    gpu_count: int,
    period_start: int,
    period_end: int,
    unit_price_micro: int,
    currency: str,
    seconds: int | None = None,
) -> LeaseReceipt:
    """An unsigned receipt with its derived id and exact amount; ``seconds`` defaults to the
    whole period. Raises pydantic's ValidationError on out-of-range input."""
    billed = period_end - period_start if seconds is None else seconds
    return LeaseReceipt(
        receipt_id=receipt_id_for(lease_id, miner_hotkey, worker_id, period_start, period_end),
        lease_id=lease_id,
        netuid=netuid,
        gateway_hotkey=gateway_hotkey,
        miner_hotkey=miner_hotkey,
        worker_id=worker_id,
        gpu_model=gpu_model,
        gpu_count=gpu_count,
        period_start=period_start,
        period_end=period_end,
        seconds=billed,
        unit_price_micro=unit_price_micro,
        amount_micro=billed * gpu_count * unit_price_micro,
        currency=currency,
    )


def gateway_payload(receipt: LeaseReceipt) -> bytes:
    return GATEWAY_DOMAIN + receipt.body()


def miner_payload(receipt: LeaseReceipt) -> bytes:
    if receipt.gateway_signature is None:
        raise ReceiptError("the gateway has not signed this receipt", reason="unsigned")
    return MINER_DOMAIN + receipt.body() + b"\n" + receipt.gateway_signature.encode("ascii")


class ReceiptRejection(StrEnum):
    MALFORMED = "malformed"
    WRONG_NETUID = "wrong_netuid"
    BAD_PERIOD = "bad_period"
    BAD_RECEIPT_ID = "bad_receipt_id"
    AMOUNT_MISMATCH = "amount_mismatch"
    FUTURE = "future"
    TOO_OLD = "too_old"
    SELF_DEALING = "self_dealing"
    GATEWAY_NOT_VALIDATOR = "gateway_not_validator"
    UNKNOWN_MINER = "unknown_miner"
    BAD_GATEWAY_SIGNATURE = "bad_gateway_signature"
    BAD_MINER_SIGNATURE = "bad_miner_signature"
    DUPLICATE = "duplicate"


@dataclass(frozen=True, slots=True)
class ReceiptVerdict:
    receipt_id: str
    reason: ReceiptRejection | None = None  # None: accepted
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


Problem = tuple[ReceiptRejection, str]


def _period_problem(r: LeaseReceipt) -> Problem | None:
    start, end, seconds = r.period_start, r.period_end, r.seconds
    if not all(type(v) is int for v in (start, end, seconds)):
        return None  # left to the model's own validation
    if end <= start:
        return ReceiptRejection.BAD_PERIOD, "period_end is not after period_start"
    if seconds > end - start:
        return ReceiptRejection.BAD_PERIOD, f"{seconds} seconds billed in a {end - start}s period"
    return None


def _revalidated(receipt: LeaseReceipt) -> LeaseReceipt | Problem:
    # model_copy/model_construct skip validation, so a receipt object proves nothing by itself.
    problem = _period_problem(receipt)
    if problem is not None:
        return problem
    try:
        # Attributes, not model_dump: dumping wrongly typed values would warn, not fail.
        return LeaseReceipt.model_validate({f: getattr(receipt, f) for f in _FIELDS})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return ReceiptRejection.MALFORMED, f"{where}: {first['msg']}"


def _derivation_problem(r: LeaseReceipt) -> Problem | None:
    derived_id = receipt_id_for(
        r.lease_id, r.miner_hotkey, r.worker_id, r.period_start, r.period_end
    )
    if r.receipt_id != derived_id:
        return (
            ReceiptRejection.BAD_RECEIPT_ID,
            "receipt_id is not the derived one",
        )
    if r.amount_micro != r.seconds * r.gpu_count * r.unit_price_micro:
        return ReceiptRejection.AMOUNT_MISMATCH, "amount_micro != seconds x gpus x unit price"
    return None


def _check_key(signer: ReceiptSigner, hotkey: str, role: str) -> None:
    if signer.crypto_type != sp_core.CRYPTO_SR25519:
        raise ReceiptError(f"the {role} must sign with an sr25519 hotkey", reason="wrong_key")
    if signer.ss58_address != hotkey:
        raise ReceiptError(
            f"key {signer.ss58_address} is not the receipt's {role} hotkey {hotkey}",
            reason="wrong_key",
        )


def _signature_ok(payload: bytes, signature_hex: str | None, hotkey: str) -> bool:
    if signature_hex is None:
        return False
    try:
        return bool(
            sp_core.verify(payload, bytes.fromhex(signature_hex), hotkey, sp_core.CRYPTO_SR25519)
        )
    except ValueError:
        return False


def _gateway_signed(r: LeaseReceipt) -> bool:
    return _signature_ok(gateway_payload(r), r.gateway_signature, r.gateway_hotkey)


def _miner_signed(r: LeaseReceipt) -> bool:
    return r.gateway_signature is not None and _signature_ok(
        miner_payload(r), r.miner_signature, r.miner_hotkey
    )


def _check_consistent(receipt: LeaseReceipt) -> None:
    """Refuse to sign what every validator would reject for its content."""
    checked = _revalidated(receipt)
    problem = checked if isinstance(checked, tuple) else _derivation_problem(checked)
    if problem is not None:
        raise ReceiptError(f"will not sign: {problem[1]}", reason=problem[0].value)


def sign_as_gateway(receipt: LeaseReceipt, signer: ReceiptSigner) -> LeaseReceipt:
    """The receipt with the gateway's signature (any previous signatures dropped)."""
    _check_key(signer, receipt.gateway_hotkey, "gateway")
    _check_consistent(receipt)
    unsigned = receipt.model_copy(update={"gateway_signature": None, "miner_signature": None})
    signature = bytes(signer.sign(gateway_payload(unsigned))).hex()
    return unsigned.model_copy(update={"gateway_signature": signature})


def countersign_as_miner(receipt: LeaseReceipt, signer: ReceiptSigner) -> LeaseReceipt:
    """The receipt with the miner's countersignature; refuses one the gateway did not sign.

    The caller (the miner) should first compare the receipt with its own view of the lease:
    worker, GPUs, period and price.
    """
    _check_key(signer, receipt.miner_hotkey, "miner")
    _check_consistent(receipt)
    if not _gateway_signed(receipt):
        raise ReceiptError("the gateway signature does not verify", reason="bad_gateway_signature")
    signature = bytes(signer.sign(miner_payload(receipt))).hex()
    return receipt.model_copy(update={"miner_signature": signature})


def _content_problem(
    r: LeaseReceipt, *, netuid: int, now: float, max_age_s: float, max_period_s: int,
    max_skew_s: float,
) -> Problem | None:  # fmt: skip
    span = r.period_end - r.period_start
    if r.netuid != netuid:
        return ReceiptRejection.WRONG_NETUID, f"netuid {r.netuid} != {netuid}"
    if span > max_period_s:
        return ReceiptRejection.BAD_PERIOD, f"period of {span}s is over {max_period_s}s"
    problem = _derivation_problem(r)
    if problem is not None:
        return problem
    if r.period_end > now + max_skew_s:
        return ReceiptRejection.FUTURE, "the period ends in the future"
    if r.period_end < now - max_age_s:
        return ReceiptRejection.TOO_OLD, "the period ended too long ago"
    return None


def _party_problem(r: LeaseReceipt, validators: Set[str], miners: Set[str]) -> Problem | None:
    if r.gateway_hotkey == r.miner_hotkey:
        return ReceiptRejection.SELF_DEALING, "the gateway billed itself"
    if r.gateway_hotkey not in validators:
        return ReceiptRejection.GATEWAY_NOT_VALIDATOR, f"{r.gateway_hotkey} has no permit"
    if r.miner_hotkey not in miners:
        return ReceiptRejection.UNKNOWN_MINER, f"{r.miner_hotkey} is not registered"
    if not _gateway_signed(r):
        return ReceiptRejection.BAD_GATEWAY_SIGNATURE, "gateway signature missing or invalid"
    if not _miner_signed(r):
        return ReceiptRejection.BAD_MINER_SIGNATURE, "miner signature missing or invalid"
    return None


def verify_receipt(
    receipt: LeaseReceipt,
    *,
    netuid: int,
    validators: Set[str],
    miners: Set[str],
    now: float,
    max_age_s: float,
    seen: Set[str] = frozenset(),
    max_period_s: int = 3600,
    max_skew_s: float = 60.0,
) -> ReceiptVerdict:
    """Accept a receipt or say why not; never raises.

    ``validators``: hotkeys with a validator permit on the metagraph; ``miners``: registered
    hotkeys; ``seen``: receipt ids already counted. Cheap checks run before signatures, and
    ``duplicate`` comes last, so it means "a valid copy of one already counted".
    """
    checked = _revalidated(receipt)
    if isinstance(checked, tuple):
        return ReceiptVerdict(str(receipt.receipt_id), *checked)
    problem = _content_problem(
        checked, netuid=netuid, now=now, max_age_s=max_age_s, max_period_s=max_period_s,
        max_skew_s=max_skew_s,
    ) or _party_problem(checked, validators, miners)  # fmt: skip
    if problem is None and checked.receipt_id in seen:
        problem = ReceiptRejection.DUPLICATE, "receipt already counted"
    if problem is None:
        return ReceiptVerdict(checked.receipt_id)
    return ReceiptVerdict(checked.receipt_id, *problem)


def verify_receipts(
    receipts: Iterable[LeaseReceipt],
    *,
    netuid: int,
    validators: Set[str],
    miners: Set[str],
    now: float,
    max_age_s: float,
    seen: Set[str] = frozenset(),
    max_period_s: int = 3600,
    max_skew_s: float = 60.0,
) -> list[ReceiptVerdict]:
    """:func:`verify_receipt` over a batch; a second copy within the batch is a duplicate."""
    counted = set(seen)
    verdicts = []
    for receipt in receipts:
        verdict = verify_receipt(
            receipt, netuid=netuid, validators=validators, miners=miners, now=now,
            max_age_s=max_age_s, seen=counted, max_period_s=max_period_s, max_skew_s=max_skew_s,
        )  # fmt: skip
        if verdict.ok:
            counted.add(verdict.receipt_id)
        verdicts.append(verdict)
    return verdicts
