"""Signed lease heartbeats (net.heartbeat): the payload, signing and every way a check fails."""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from byteleap.net.heartbeat import (
    DOMAIN,
    MAX_SIGNED_AT_MS,
    PAYLOAD_BYTES,
    LeaseHeartbeat,
    check_heartbeat,
    heartbeat_payload,
    new_nonce,
    sign_heartbeat,
)
from byteleap.net.messages import (
    LeaseLiveness,
    LeaseProbed,
    ProbeLease,
    parse_miner_message,
    parse_worker_message,
)

KEY = Ed25519PrivateKey.generate()
OTHER_KEY = Ed25519PrivateKey.generate()
NOW_MS = 1_700_000_000_000
LEASE = "ab" * 16
WORKER = "w-0123456789abcdef"
NONCE = "cd" * 32

hex_id = st.binary(min_size=16, max_size=16).map(bytes.hex)
worker_id = st.binary(min_size=8, max_size=8).map(lambda b: "w-" + b.hex())
nonce = st.binary(min_size=32, max_size=32).map(bytes.hex)
signed_at = st.integers(min_value=0, max_value=MAX_SIGNED_AT_MS)
fields = st.fixed_dictionaries(
    {
        "lease_id": hex_id,
        "worker_id": worker_id,
        "nonce": nonce,
        "alive": st.booleans(),
        "signed_at_ms": signed_at,
    }
)


def public_hex(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def signed(key: Ed25519PrivateKey = KEY, **overrides: Any) -> LeaseHeartbeat:
    values: dict[str, Any] = {
        "lease_id": LEASE,
        "worker_id": WORKER,
        "nonce": NONCE,
        "alive": True,
        "signed_at_ms": NOW_MS,
    }
    return sign_heartbeat(key.sign, **(values | overrides))


def check(heartbeat: LeaseHeartbeat | None, **overrides: Any) -> tuple[bool, str]:
    expected: dict[str, Any] = {
        "public_key": public_hex(KEY),
        "lease_id": LEASE,
        "worker_id": WORKER,
        "nonce": NONCE,
        "now": NOW_MS / 1000 + 1.0,
        "max_age_s": 10.0,
        "max_ahead_s": 5.0,
    }
    verdict = check_heartbeat(heartbeat, **(expected | overrides))
    return verdict.ok, verdict.reason


def test_an_honest_heartbeat_passes() -> None:
    assert check(signed()) == (True, "ok")


def test_the_payload_has_its_documented_fixed_layout() -> None:
    payload = heartbeat_payload(
        lease_id=LEASE, worker_id=WORKER, nonce=NONCE, alive=True, signed_at_ms=NOW_MS
    )
    assert len(payload) == PAYLOAD_BYTES == 28 + 16 + 8 + 32 + 1 + 8
    assert payload.startswith(DOMAIN)
    rest = payload[len(DOMAIN) :]
    assert rest[:16] == bytes.fromhex(LEASE)
    assert rest[16:24] == bytes.fromhex(WORKER[2:])
    assert rest[24:56] == bytes.fromhex(NONCE)
    assert rest[56:57] == b"\x01"
    assert int.from_bytes(rest[57:], "big") == NOW_MS


@given(fields, fields)
def test_distinct_heartbeats_have_distinct_payloads(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert (heartbeat_payload(**a) == heartbeat_payload(**b)) == (a == b)


@given(fields, st.data())
def test_any_change_of_any_field_breaks_the_signature(
    values: dict[str, Any], data: st.DataObject
) -> None:
    heartbeat = sign_heartbeat(KEY.sign, **values)
    name = data.draw(st.sampled_from(sorted(values)))
    other = {
        "lease_id": hex_id,
        "worker_id": worker_id,
        "nonce": nonce,
        "alive": st.booleans(),
        "signed_at_ms": signed_at,
    }[name]
    changed = data.draw(other.filter(lambda v: v != values[name]))
    forged = heartbeat.model_copy(update={name: changed})
    # The checker expects exactly the forged fields, so only the signature can refuse it.
    verdict = check_heartbeat(
        forged,
        public_key=public_hex(KEY),
        lease_id=forged.lease_id,
        worker_id=forged.worker_id,
        nonce=forged.nonce,
        now=forged.signed_at_ms / 1000,
        max_age_s=1.0,
    )
    assert (verdict.ok, verdict.reason) == (False, "bad_worker_signature")
    untouched = check_heartbeat(
        heartbeat,
        public_key=public_hex(KEY),
        lease_id=heartbeat.lease_id,
        worker_id=heartbeat.worker_id,
        nonce=heartbeat.nonce,
        now=heartbeat.signed_at_ms / 1000,
        max_age_s=1.0,
    )
    assert untouched.reason == ("ok" if heartbeat.alive else "refused")


@given(st.binary(min_size=64, max_size=64))
def test_a_made_up_signature_fails(signature: bytes) -> None:
    forged = signed().model_copy(update={"signature": signature.hex()})
    assert check(forged) == (False, "bad_worker_signature")


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("heartbeat", "overrides", "reason"),
    [
        (None, {}, "unsigned"),
        (signed(), {"public_key": None}, "no_worker_key"),
        (signed(), {"public_key": "00" * 32}, "bad_worker_signature"),  # not even a valid key
        (signed(OTHER_KEY), {}, "bad_worker_signature"),  # another worker's key
        (signed(nonce="ee" * 32), {}, "wrong_nonce"),  # an earlier probe's answer replayed
        (signed(lease_id="01" * 16), {}, "wrong_lease"),
        (signed(worker_id="w-fedcba9876543210"), {}, "wrong_worker"),
        (signed(signed_at_ms=NOW_MS - 60_000), {}, "stale"),
        (signed(signed_at_ms=NOW_MS + 60_000), {}, "stale"),  # from the future
        (signed(alive=False), {}, "refused"),
    ],
    ids=[
        "unsigned",
        "no-key",
        "bad-key",
        "other-key",
        "replayed-nonce",
        "other-lease",
        "other-worker",
        "old",
        "future",
        "not-alive",
    ],
)
def test_every_failure_has_its_reason(
    heartbeat: LeaseHeartbeat | None, overrides: dict[str, Any], reason: str
) -> None:
    assert check(heartbeat, **overrides) == (False, reason)


def test_the_freshness_window_is_inclusive_of_its_bounds() -> None:
    at = NOW_MS / 1000
    assert check(signed(), now=at + 10.0)[0]
    assert not check(signed(), now=at + 10.5)[0]
    assert check(signed(), now=at - 5.0)[0]
    assert not check(signed(), now=at - 5.5)[0]


@pytest.mark.parametrize(
    "bad",
    [
        {"lease_id": "ab" * 15},
        {"lease_id": "AB" * 16},  # the same bytes spelled otherwise
        {"worker_id": "x-0123456789abcdef"},
        {"worker_id": "w-0123 456789abcdef"},
        {"nonce": "cd" * 16},
        {"nonce": "CD" * 32},
        {"signed_at_ms": -1},
    ],
)
def test_the_payload_refuses_fields_of_another_form(bad: dict[str, Any]) -> None:
    values: dict[str, Any] = {
        "lease_id": LEASE, "worker_id": WORKER, "nonce": NONCE, "alive": True,
        "signed_at_ms": NOW_MS,
    }  # fmt: skip
    with pytest.raises(ValueError):
        heartbeat_payload(**(values | bad))


def test_nonces_are_fresh_and_256_bits() -> None:
    nonces = {new_nonce() for _ in range(100)}
    assert len(nonces) == 100 and all(len(bytes.fromhex(n)) == 32 for n in nonces)


def test_the_new_fields_default_so_older_peers_still_parse() -> None:
    """An older miner's probe and an older worker's answer parse (and carry no heartbeat)."""
    probe = parse_miner_message(
        f'{{"type":"probe_lease","probe_id":"{LEASE}","lease_id":"{LEASE}"}}'
    )
    assert isinstance(probe, ProbeLease) and probe.nonce is None
    probed = parse_worker_message(f'{{"type":"lease_probed","probe_id":"{LEASE}","alive":true}}')
    assert isinstance(probed, LeaseProbed) and probed.heartbeat is None
    old = LeaseLiveness.model_validate_json(
        f'{{"type":"lease_liveness","lease_id":"{LEASE}","alive":true,"reason":"ok"}}'
    )
    assert old.heartbeat is None
    assert check(old.heartbeat) == (False, "unsigned")  # but it is never accepted


def test_a_heartbeat_survives_the_two_hops_unchanged() -> None:
    heartbeat = signed()
    probed = parse_worker_message(
        LeaseProbed(probe_id=LEASE, alive=True, heartbeat=heartbeat).model_dump_json()
    )
    assert isinstance(probed, LeaseProbed)
    relayed = LeaseLiveness(lease_id=LEASE, alive=True, reason="ok", heartbeat=probed.heartbeat)
    assert LeaseLiveness.model_validate_json(relayed.model_dump_json()).heartbeat == heartbeat
    assert check(heartbeat) == (True, "ok")
