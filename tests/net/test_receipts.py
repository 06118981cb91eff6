"""Lease receipts: real sr25519 keys, the canonical bytes, and every way to cheat we know of."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import bittensor as bt
import pytest
from bittensor import sp_core
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from byteleap.net.receipts import (
    GATEWAY_DOMAIN,
    MINER_DOMAIN,
    LeaseReceipt,
    ReceiptError,
    ReceiptRejection,
    anonymous_lease_id,
    countersign_as_miner,
    gateway_payload,
    miner_payload,
    new_receipt,
    receipt_id_for,
    sign_as_gateway,
    verify_receipt,
    verify_receipts,
)
from byteleap.validator.lease_revenue import lease_revenue
from net.receipt_samples import (
    ATTACKER,
    GATEWAY,
    LEASE,
    MINER,
    MINERS,
    NETUID,
    NOW,
    OTHER_MINER,
    SECRET,
    VALIDATORS,
)
from net.receipt_samples import (
    signed as _signed,
)
from net.receipt_samples import (
    unsigned as _unsigned,
)


def _verify(receipt: LeaseReceipt, **overrides: Any) -> ReceiptRejection | None:
    policy: dict[str, Any] = {
        "netuid": NETUID,
        "validators": VALIDATORS,
        "miners": MINERS,
        "now": NOW,
        "max_age_s": 3 * 3600,
    }
    return verify_receipt(receipt, **(policy | overrides)).reason


def _resign_as(receipt: LeaseReceipt, gateway: Any, miner: Any) -> LeaseReceipt:
    """What a forger with these keys can produce, bypassing the library's own checks."""
    g = receipt.model_copy(
        update={"gateway_signature": gateway.sign(gateway_payload(receipt)).hex()}
    )
    return g.model_copy(update={"miner_signature": miner.sign(miner_payload(g)).hex()})


# -- the happy path and the format ---------------------------------------------------------


def test_signed_receipt_verifies_and_survives_json() -> None:
    receipt = _signed()
    assert receipt.amount_micro == 300 * 2 * 550
    assert _verify(receipt) is None
    again = LeaseReceipt.model_validate_json(receipt.model_dump_json())
    assert again == receipt
    assert _verify(again) is None


def test_wallet_hotkeys_sign_receipts(tmp_path: Path) -> None:
    gateway = bt.Wallet("gw", "hot", path=str(tmp_path))
    gateway.create_new_hotkey(use_password=False, suppress=True)
    key = gateway.hotkey
    receipt = _unsigned(gateway_hotkey=key.ss58_address)
    signed = countersign_as_miner(sign_as_gateway(receipt, key), MINER)
    assert _verify(signed, validators={key.ss58_address}) is None
    assert _verify(signed) is ReceiptRejection.GATEWAY_NOT_VALIDATOR


def test_canonical_bytes_follow_the_documented_format() -> None:
    alice = sp_core.Keypair.create_from_uri("//Alice")
    bob = sp_core.Keypair.create_from_uri("//Bob")
    receipt = new_receipt(
        lease_id="ab" * 16, netuid=3, gateway_hotkey=alice.ss58_address,
        miner_hotkey=bob.ss58_address, worker_id="w-1", gpu_model="RTX 4090", gpu_count=1,
        period_start=100, period_end=160, unit_price_micro=10, currency="USD",
    )  # fmt: skip
    # Written from the module docstring, not from the code: length-prefixed id parts ...
    parts = ["ab" * 16, bob.ss58_address, "w-1", "100", "160"]
    framed = b"".join(len(p).to_bytes(4, "big") + p.encode() for p in parts)
    expected_id = hashlib.blake2b(b"byteleap/receipt-id/v1\x00" + framed, digest_size=16)
    assert receipt.receipt_id == expected_id.hexdigest()
    # ... and sorted-key JSON without whitespace.
    body = (
        '{"amount_micro":600,"currency":"USD",'
        f'"gateway_hotkey":"{alice.ss58_address}","gpu_count":1,"gpu_model":"RTX 4090",'
        f'"lease_id":"{"ab" * 16}","miner_hotkey":"{bob.ss58_address}","netuid":3,'
        f'"period_end":160,"period_start":100,"receipt_id":"{receipt.receipt_id}",'
        '"seconds":60,"unit_price_micro":10,"version":1,"worker_id":"w-1"}'
    ).encode()
    assert gateway_payload(receipt) == b"byteleap/lease-receipt/v1/gateway\n" + body
    signed = sign_as_gateway(receipt, alice)
    assert miner_payload(signed) == (
        b"byteleap/lease-receipt/v1/miner\n" + body + b"\n" + signed.gateway_signature.encode()
    )
    assert GATEWAY_DOMAIN != MINER_DOMAIN


def test_body_ignores_signatures_and_is_key_order_free() -> None:
    receipt = _signed()
    shuffled = dict(reversed(list(receipt.model_dump().items())))
    assert LeaseReceipt.model_validate(shuffled).body() == receipt.body()
    assert receipt.body() == _unsigned().body()
    assert "signature" not in json.loads(receipt.body())


def test_lease_id_is_keyed_and_anonymous() -> None:
    other_secret = b"another-gateway-secret-987654321"
    assert anonymous_lease_id("lease-42", SECRET) == LEASE
    assert anonymous_lease_id("lease-42", other_secret) != LEASE
    assert anonymous_lease_id("lease-43", SECRET) != LEASE
    assert "42" not in LEASE and len(LEASE) == 32
    with pytest.raises(ReceiptError) as err:
        anonymous_lease_id("lease-42", b"short")
    assert err.value.reason == "weak_secret"


def test_receipt_id_names_one_lease_worker_and_period() -> None:
    base = (LEASE, MINER.ss58_address, "w-1", 100, 200)
    ids = {receipt_id_for(*base)}
    for i, changed in enumerate(("0" * 32, OTHER_MINER.ss58_address, "w-2", 101, 201)):
        variant = list(base)
        variant[i] = changed
        ids.add(receipt_id_for(*variant))  # type: ignore[arg-type]
    assert len(ids) == 6
    # Length prefixes: moving a character between parts gives another id.
    assert receipt_id_for("a", "bc", "d", 1, 2) != receipt_id_for("ab", "c", "d", 1, 2)


def test_partial_period_bills_only_its_seconds() -> None:
    receipt = _signed(seconds=120)
    assert receipt.amount_micro == 120 * 2 * 550
    assert _verify(receipt) is None


# -- adversarial ------------------------------------------------------------------------


@pytest.mark.adversarial
def test_forged_gateway_signature_is_rejected() -> None:
    genuine = _unsigned()
    # The attacker signs in the gateway's name with its own key; the real miner countersigns.
    forged = genuine.model_copy(
        update={"gateway_signature": ATTACKER.sign(gateway_payload(genuine)).hex()}
    )
    forged = forged.model_copy(update={"miner_signature": MINER.sign(miner_payload(forged)).hex()})
    assert _verify(forged) is ReceiptRejection.BAD_GATEWAY_SIGNATURE
    with pytest.raises(ReceiptError) as err:
        countersign_as_miner(forged, MINER)
    assert err.value.reason == "bad_gateway_signature"
    garbage = _signed().model_copy(update={"gateway_signature": "00" * 64})
    assert _verify(garbage) is ReceiptRejection.BAD_GATEWAY_SIGNATURE


@pytest.mark.adversarial
def test_gateway_without_validator_permit_is_rejected() -> None:
    # A fully valid receipt signed by a key that holds no validator permit.
    rogue = _resign_as(_unsigned(gateway_hotkey=ATTACKER.ss58_address), ATTACKER, MINER)
    assert _verify(rogue) is ReceiptRejection.GATEWAY_NOT_VALIDATOR
    assert _verify(rogue, validators=VALIDATORS | {ATTACKER.ss58_address}) is None


@pytest.mark.adversarial
def test_miner_cannot_countersign_a_modified_receipt() -> None:
    gateway_signed = sign_as_gateway(_unsigned(), GATEWAY)
    inflated = _unsigned(unit_price_micro=5500).model_copy(
        update={"gateway_signature": gateway_signed.gateway_signature}
    )
    assert inflated.receipt_id == gateway_signed.receipt_id
    with pytest.raises(ReceiptError) as err:
        countersign_as_miner(inflated, MINER)
    assert err.value.reason == "bad_gateway_signature"
    # Bypassing the library does not help: the gateway's signature no longer covers the body.
    by_hand = inflated.model_copy(
        update={"miner_signature": MINER.sign(miner_payload(inflated)).hex()}
    )
    assert _verify(by_hand) is ReceiptRejection.BAD_GATEWAY_SIGNATURE


@pytest.mark.adversarial
def test_miner_signature_does_not_transfer() -> None:
    first, second = _signed(), _signed(worker_id="w-0002")
    swapped = second.model_copy(update={"miner_signature": first.miner_signature})
    assert _verify(swapped) is ReceiptRejection.BAD_MINER_SIGNATURE
    # Another registered miner cannot countersign in this miner's name.
    other = _signed(miner_key=MINER)
    by_other = other.model_copy(
        update={"miner_signature": OTHER_MINER.sign(miner_payload(other)).hex()}
    )
    assert _verify(by_other) is ReceiptRejection.BAD_MINER_SIGNATURE
    # The gateway's signature in the miner's slot is over other bytes (another domain).
    gateway_signed = sign_as_gateway(_unsigned(), GATEWAY)
    echoed = gateway_signed.model_copy(update={"miner_signature": gateway_signed.gateway_signature})
    assert _verify(echoed) is ReceiptRejection.BAD_MINER_SIGNATURE
    assert _verify(gateway_signed) is ReceiptRejection.BAD_MINER_SIGNATURE  # not countersigned


@pytest.mark.adversarial
def test_signing_with_the_wrong_key_is_refused() -> None:
    with pytest.raises(ReceiptError) as err:
        sign_as_gateway(_unsigned(), ATTACKER)
    assert err.value.reason == "wrong_key"
    with pytest.raises(ReceiptError):
        countersign_as_miner(sign_as_gateway(_unsigned(), GATEWAY), OTHER_MINER)
    ed25519 = sp_core.Keypair.create_from_uri("//Eve", sp_core.CRYPTO_ED25519)
    with pytest.raises(ReceiptError) as err:
        sign_as_gateway(_unsigned(gateway_hotkey=ed25519.ss58_address), ed25519)
    assert err.value.reason == "wrong_key"


@pytest.mark.adversarial
def test_replayed_receipt_counts_once() -> None:
    receipt = _signed()
    assert _verify(receipt, seen={receipt.receipt_id}) is ReceiptRejection.DUPLICATE
    resigned = _signed()  # a fresh signature (sr25519 is randomised) over the same period
    assert resigned.gateway_signature != receipt.gateway_signature
    assert resigned.receipt_id == receipt.receipt_id
    policy: dict[str, Any] = {
        "netuid": NETUID, "validators": VALIDATORS, "miners": MINERS, "now": NOW,
        "max_age_s": 3600,
    }  # fmt: skip
    verdicts = verify_receipts([receipt, resigned, _signed(worker_id="w-9")], **policy)
    assert [v.reason for v in verdicts] == [None, ReceiptRejection.DUPLICATE, None]
    assert len(lease_revenue([receipt, resigned])) == 1


@pytest.mark.adversarial
def test_gateway_cannot_dodge_duplicates_with_a_fresh_id() -> None:
    fresh_id = _unsigned().model_copy(update={"receipt_id": "f" * 32})
    forged = _resign_as(fresh_id, GATEWAY, MINER)
    assert _verify(forged) is ReceiptRejection.BAD_RECEIPT_ID
    with pytest.raises(ReceiptError) as err:
        sign_as_gateway(fresh_id, GATEWAY)
    assert err.value.reason == "bad_receipt_id"


@pytest.mark.adversarial
def test_bad_periods_are_refused() -> None:
    with pytest.raises(ValidationError):
        _unsigned(period_start=NOW - 300, period_end=NOW - 300)
    with pytest.raises(ValidationError):
        _unsigned(seconds=301)
    # Objects built around validation still get a verdict, not a pass.
    backwards = _signed().model_copy(update={"period_start": NOW, "period_end": NOW - 10})
    assert _verify(backwards) is ReceiptRejection.BAD_PERIOD
    overbilled = _signed().model_copy(update={"seconds": 10_000})
    assert _verify(overbilled) is ReceiptRejection.BAD_PERIOD
    # A day in one receipt would drop a day's revenue into one scoring window.
    long = _signed(period_start=NOW - 86_400 - 60, period_end=NOW - 60)
    assert _verify(long) is ReceiptRejection.BAD_PERIOD
    assert _verify(long, max_period_s=86_400) is None


@pytest.mark.adversarial
def test_freshness_and_subnet() -> None:
    receipt = _signed()
    assert _verify(receipt, now=receipt.period_end - 61) is ReceiptRejection.FUTURE
    assert _verify(receipt, now=receipt.period_end - 59) is None  # within clock skew
    assert _verify(receipt, now=receipt.period_end + 3600, max_age_s=3599) is (
        ReceiptRejection.TOO_OLD
    )
    assert _verify(receipt, netuid=NETUID + 1) is ReceiptRejection.WRONG_NETUID


@pytest.mark.adversarial
def test_parties_must_be_registered_and_distinct() -> None:
    assert _verify(_signed(), miners={OTHER_MINER.ss58_address}) is ReceiptRejection.UNKNOWN_MINER
    # A validator that is also a miner billing itself.
    self_billed = _resign_as(_unsigned(miner_hotkey=GATEWAY.ss58_address), GATEWAY, GATEWAY)
    miners = MINERS | {GATEWAY.ss58_address}
    assert _verify(self_billed, miners=miners) is ReceiptRejection.SELF_DEALING


@pytest.mark.adversarial
def test_amount_tampering_after_signing_is_caught() -> None:
    receipt = _signed()
    # Changing the amount alone breaks the arithmetic the receipt carries.
    bumped = receipt.model_copy(update={"amount_micro": receipt.amount_micro * 10})
    assert _verify(bumped) is ReceiptRejection.AMOUNT_MISMATCH
    # Changing amount and price together keeps the arithmetic but breaks the signature.
    consistent = receipt.model_copy(
        update={"amount_micro": receipt.amount_micro * 10, "unit_price_micro": 5500}
    )
    assert _verify(consistent) is ReceiptRejection.BAD_GATEWAY_SIGNATURE
    with pytest.raises(ReceiptError) as err:
        sign_as_gateway(bumped, GATEWAY)
    assert err.value.reason == "amount_mismatch"


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("amount_micro", math.nan),
        ("amount_micro", math.inf),
        ("amount_micro", 1.5),
        ("amount_micro", -1),
        ("amount_micro", 2**63),
        ("amount_micro", "600"),
        ("unit_price_micro", 10**30),
        ("gpu_count", True),
        ("gpu_count", 0),
        ("gpu_count", 10**6),
        ("seconds", math.nan),
        ("period_end", 10**12),
        ("period_start", -5),
        ("netuid", -1),
        ("version", 2),
        ("currency", "usd"),
        ("worker_id", "w\x00"),
        ("gpu_model", "H100\u200b"),
        ("gpu_model", "x" * 129),
        ("miner_hotkey", "5" + "A" * 47),
        ("lease_id", "acme-corp-lease-0001-0000000000"),
        ("gateway_signature", "zz" * 64),
        ("miner_signature", "ab" * 63),
    ],
)
def test_model_refuses_out_of_range_values(field: str, value: Any) -> None:
    data = _signed().model_dump() | {field: value}
    with pytest.raises(ValidationError):
        LeaseReceipt.model_validate(data)
    # And a receipt smuggled past the model is malformed, whatever the signatures say.
    smuggled = _signed().model_copy(update={field: value})
    assert _verify(smuggled) is ReceiptRejection.MALFORMED


@pytest.mark.adversarial
def test_model_refuses_extra_fields() -> None:
    with pytest.raises(ValidationError):
        LeaseReceipt.model_validate(_signed().model_dump() | {"tenant": "acme"})


_PRINTABLE = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=128
)
_ALTERNATIVES: dict[str, st.SearchStrategy[Any]] = {
    "lease_id": st.text("0123456789abcdef", min_size=32, max_size=32),
    "netuid": st.integers(0, 65_535),
    "gateway_hotkey": st.sampled_from([MINER.ss58_address, OTHER_MINER.ss58_address]),
    "miner_hotkey": st.sampled_from([GATEWAY.ss58_address, OTHER_MINER.ss58_address]),
    "worker_id": _PRINTABLE,
    "gpu_model": _PRINTABLE,
    "gpu_count": st.integers(1, 1024),
    "period_start": st.integers(0, NOW - 600),
    "period_end": st.integers(NOW - 299, NOW),
    "seconds": st.integers(1, 299),
    "unit_price_micro": st.integers(0, 10**9),
    "currency": st.sampled_from(["EUR", "TAO", "USDC"]),
}
_ONE_CHANGE = st.sampled_from(sorted(_ALTERNATIVES)).flatmap(
    lambda field: st.tuples(st.just(field), _ALTERNATIVES[field])
)
_SIGNED_ONCE = _signed()


@pytest.mark.adversarial
@settings(max_examples=200, deadline=None)
@given(_ONE_CHANGE)
def test_changing_any_signed_field_fails_verification(change: tuple[str, Any]) -> None:
    field, value = change
    receipt = _SIGNED_ONCE
    if getattr(receipt, field) == value:
        return
    # Re-derive the id and the amount, so that nothing but the signatures can catch the change.
    t = receipt.model_copy(update={field: value})
    tampered = t.model_copy(update={
        "receipt_id": receipt_id_for(t.lease_id, t.miner_hotkey, t.worker_id, t.period_start,
                                     t.period_end),
        "amount_micro": t.seconds * t.gpu_count * t.unit_price_micro,
    })  # fmt: skip
    everyone = MINERS | VALIDATORS
    verdict = _verify(tampered, miners=everyone, validators=everyone, netuid=tampered.netuid,
                      max_age_s=10**11, max_period_s=10**11)  # fmt: skip
    assert verdict in {ReceiptRejection.BAD_GATEWAY_SIGNATURE, ReceiptRejection.SELF_DEALING}
