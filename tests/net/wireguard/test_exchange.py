"""A member's checks on peer sets: forged, wrong signer, replayed, expired, misaddressed."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

import pytest
from bittensor import sp_core
from pydantic import ValidationError

from byteleap.net.wireguard import (
    JoinRequest,
    Peer,
    PeerSet,
    PeerSetRefusal,
    PeerSetVerifier,
    SignedPeerSet,
    WireGuardKeyPair,
    render_config,
    sign_peer_set,
)
from net.wireguard.wg_fixtures import keypair

pytestmark = pytest.mark.adversarial

LEASE = "a" * 32
TENANT = 7


def _peer_set(
    epoch: int = 1, *, issued_at: float | None = None, lease: str = LEASE, **over: object
) -> PeerSet:
    issued = time.time() if issued_at is None else issued_at
    fields: dict[str, object] = {
        "tenant_id": TENANT,
        "lease_id": lease,
        "subnet": "10.200.3.0/24",
        "address": "10.200.3.1",
        "epoch": epoch,
        "nonce": secrets.token_hex(16),
        "issued_at": issued,
        "expires_at": issued + 60,
        "peers": (
            Peer(
                public_key=WireGuardKeyPair.generate().public_key,
                endpoint="192.0.2.2:51820",
                allowed_ip="10.200.3.2/32",
            ),
        ),
    }
    fields.update(over)
    return PeerSet.model_validate(fields)


@pytest.fixture
def gateway() -> sp_core.Keypair:
    return keypair()


@pytest.fixture
def miner() -> sp_core.Keypair:
    return keypair()


@pytest.fixture
def verifier(gateway: sp_core.Keypair, miner: sp_core.Keypair) -> PeerSetVerifier:
    return PeerSetVerifier(
        lease_id=LEASE,
        tenant_id=TENANT,
        miner_hotkey=miner.ss58_address,
        gateway_hotkey=gateway.ss58_address,
    )


Sign = Callable[[PeerSet], SignedPeerSet]


@pytest.fixture
def sign(gateway: sp_core.Keypair, miner: sp_core.Keypair) -> Sign:
    return lambda ps: sign_peer_set(gateway, ps, miner_hotkey=miner.ss58_address)


def test_a_genuine_peer_set_is_accepted_and_moves_the_epoch(
    verifier: PeerSetVerifier, sign: Sign
) -> None:
    verdict = verifier.check(sign(_peer_set(3)))
    assert verdict.ok and verdict.peer_set is not None
    assert verifier.last_epoch == 3
    assert not verifier.rejections


def test_a_tampered_body_is_a_bad_signature(verifier: PeerSetVerifier, sign: Sign) -> None:
    signed = sign(_peer_set())
    forged = signed.body.replace("10.200.3.2/32", "10.200.3.9/32")
    assert forged != signed.body
    verdict = verifier.check(SignedPeerSet(auth=signed.auth, body=forged))
    assert verdict.refusal is PeerSetRefusal.BAD_SIGNATURE
    assert verifier.last_epoch == 0
    assert list(verifier.rejections) == [verdict]


def test_a_peer_set_signed_by_anyone_but_the_gateway_is_refused(
    verifier: PeerSetVerifier, miner: sp_core.Keypair
) -> None:
    impostor = keypair()
    signed = sign_peer_set(impostor, _peer_set(), miner_hotkey=miner.ss58_address)
    assert verifier.check(signed).refusal is PeerSetRefusal.WRONG_SIGNER


def test_missing_or_garbled_auth_is_a_bad_signature(verifier: PeerSetVerifier, sign: Sign) -> None:
    signed = sign(_peer_set())
    assert verifier.check(SignedPeerSet(auth={}, body=signed.body)).refusal is (
        PeerSetRefusal.BAD_SIGNATURE
    )
    garbled = {**signed.auth, "X-Bittensor-Signature": "0x" + "00" * 64}
    assert verifier.check(SignedPeerSet(auth=garbled, body=signed.body)).refusal is (
        PeerSetRefusal.BAD_SIGNATURE
    )


def test_a_peer_set_for_another_miner_is_refused(
    verifier: PeerSetVerifier, gateway: sp_core.Keypair
) -> None:
    signed = sign_peer_set(gateway, _peer_set(), miner_hotkey=keypair().ss58_address)
    assert verifier.check(signed).refusal is PeerSetRefusal.WRONG_RECEIVER


@pytest.mark.parametrize("what", ["lease", "tenant"])
def test_another_members_peer_set_is_refused(
    verifier: PeerSetVerifier, sign: Sign, what: str
) -> None:
    ps = _peer_set(lease="b" * 32) if what == "lease" else _peer_set(tenant_id=TENANT + 1)
    assert verifier.check(sign(ps)).refusal is PeerSetRefusal.WRONG_MEMBER


def test_the_same_message_twice_is_a_replay(verifier: PeerSetVerifier, sign: Sign) -> None:
    signed = sign(_peer_set(1))
    assert verifier.check(signed).ok
    verdict = verifier.check(signed)
    assert verdict.refusal is PeerSetRefusal.REPLAYED


def test_an_older_or_equal_epoch_is_a_replay(verifier: PeerSetVerifier, sign: Sign) -> None:
    old, new = sign(_peer_set(4)), sign(_peer_set(5))
    assert verifier.check(new).ok
    assert verifier.check(old).refusal is PeerSetRefusal.REPLAYED
    assert verifier.check(sign(_peer_set(5))).refusal is PeerSetRefusal.REPLAYED
    assert verifier.last_epoch == 5
    assert verifier.check(sign(_peer_set(6))).ok


def test_a_reused_nonce_is_a_replay(verifier: PeerSetVerifier, sign: Sign) -> None:
    first = _peer_set(1)
    assert verifier.check(sign(first)).ok
    again = _peer_set(2, nonce=first.nonce)
    verdict = verifier.check(sign(again))
    assert verdict.refusal is PeerSetRefusal.REPLAYED and "nonce" in verdict.detail


def test_an_expired_peer_set_is_refused(verifier: PeerSetVerifier, sign: Sign) -> None:
    verdict = verifier.check(sign(_peer_set(issued_at=time.time() - 61)))
    assert verdict.refusal is PeerSetRefusal.EXPIRED


def test_a_peer_set_from_the_future_is_refused(verifier: PeerSetVerifier, sign: Sign) -> None:
    verdict = verifier.check(sign(_peer_set(issued_at=time.time() + 30)))
    assert verdict.refusal is PeerSetRefusal.NOT_YET_VALID


def test_a_signature_older_than_the_window_is_expired(
    gateway: sp_core.Keypair, miner: sp_core.Keypair
) -> None:
    """Even with a lying ``expires_at``, the signature's own timestamp bounds its life."""
    now = [time.time()]
    verifier = PeerSetVerifier(
        lease_id=LEASE,
        tenant_id=TENANT,
        miner_hotkey=miner.ss58_address,
        gateway_hotkey=gateway.ss58_address,
        validity_s=0.2,
        skew_s=0.0,
        clock=lambda: now[0],
    )
    signed = sign_peer_set(gateway, _peer_set(), miner_hotkey=miner.ss58_address)
    time.sleep(0.3)
    assert verifier.check(signed).refusal is PeerSetRefusal.EXPIRED


def test_garbage_is_malformed(verifier: PeerSetVerifier) -> None:
    assert verifier.check(b"{not json").refusal is PeerSetRefusal.MALFORMED
    assert verifier.check(
        b'{"type":"wg_signed_peer_set","auth":{},"body":"x","extra":1}'
    ).refusal is (PeerSetRefusal.MALFORMED)


def test_a_signed_body_that_is_no_peer_set_is_malformed(
    verifier: PeerSetVerifier, gateway: sp_core.Keypair, miner: sp_core.Keypair
) -> None:
    from byteleap.net.auth import sign_response
    from byteleap.net.wireguard.exchange import PEERS_METHOD, PEERS_PATH

    body = b'{"type":"wg_peer_set"}'
    auth = sign_response(
        gateway, method=PEERS_METHOD, path=PEERS_PATH, body=body, caller=miner.ss58_address
    )
    verdict = verifier.check(SignedPeerSet(auth=auth, body=body.decode()))
    assert verdict.refusal is PeerSetRefusal.MALFORMED


@pytest.mark.parametrize(
    "over",
    [
        {"address": "10.200.4.1"},  # outside its subnet
        {"subnet": "10.200.3.0/23"},
        {"address": "10.200.3.2"},  # the same address as its peer
        {"expires_at": 0.0},
    ],
)
def test_inconsistent_peer_sets_cannot_be_built(over: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        _peer_set(**over)


@pytest.mark.parametrize(
    "endpoint", ["192.0.2.1", "192.0.2.1:0", "192.0.2.1:70000", "::1:80", "[10.0.0.1]:80",
                 "224.0.0.1:80", "0.0.0.0:80", "host.example:80", "192.0.2.1:80\n[Peer]"],
)  # fmt: skip
def test_bad_endpoints_are_refused(endpoint: str) -> None:
    with pytest.raises(ValidationError):
        JoinRequest(
            lease_id=LEASE,
            tenant_id=1,
            public_key=WireGuardKeyPair.generate().public_key,
            endpoint=endpoint,
        )


def test_ipv6_endpoints_are_canonical() -> None:
    request = JoinRequest(
        lease_id=LEASE,
        tenant_id=1,
        public_key=WireGuardKeyPair.generate().public_key,
        endpoint="[2001:DB8:0::1]:51820",
    )
    assert request.endpoint == "[2001:db8::1]:51820"


def test_config_names_every_peer_with_exactly_its_address() -> None:
    keys = WireGuardKeyPair.generate()
    ps = _peer_set()
    text = render_config(
        private_key=keys.private_key_base64(), listen_port=51820, peer_set=ps, keepalive_s=25
    )
    peer = ps.peers[0]
    assert text == (
        "[Interface]\n"
        f"PrivateKey = {keys.private_key_base64()}\n"
        "ListenPort = 51820\n"
        "\n"
        "[Peer]\n"
        f"PublicKey = {peer.public_key}\n"
        "Endpoint = 192.0.2.2:51820\n"
        "AllowedIPs = 10.200.3.2/32\n"
        "PersistentKeepalive = 25\n"
    )
    bare = render_config(private_key="k", listen_port=1, peer_set=None, keepalive_s=0)
    assert "[Peer]" not in bare
    with pytest.raises(ValueError):
        render_config(private_key="k\n[Peer]", listen_port=1, peer_set=None)
