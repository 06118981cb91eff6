"""The bittensor adapter, driven through the real SDK client over an in-memory Substrate.

No chain node is reachable here, so :class:`SubtensorTwin` implements the SDK's own
``Substrate`` contract: the SDK's intents, executor, preflights and metagraph decoding
all run for real, and only the node is replaced. ``live`` tests talk to the endpoint
in ``BYTELEAP_SUBTENSOR`` (netuid from ``BYTELEAP_SUBTENSOR_NETUID``, default 1).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import bittensor as bt
import bittensor_core
import pytest
from bittensor._transport.errors import SubstrateRequestException
from bittensor.multisig import MultisigFundingError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from hypothesis import given
from hypothesis import strategies as st

from byteleap.chain.bittensor_adapter import (
    BittensorChain,
    certificate_hex,
    certificate_payload,
    chain_error_from_sdk,
)
from byteleap.chain.port import (
    ChainAuthError,
    ChainError,
    ChainPort,
    ChainRejected,
    ChainUnavailable,
)
from byteleap.keys import create_wallet

NETUID = 7
U16 = 65535


def spki(key: Any) -> bytes:
    return bytes(
        key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def on_twin(twin: SubtensorTwin, netuid: int = NETUID, timeout_s: float = 30.0) -> BittensorChain:
    # The twin implements only the part of the Substrate contract the adapter reaches.
    substrate = cast(bt.Substrate, twin)
    return BittensorChain(
        "ws://twin.invalid:9944", netuid=netuid, timeout_s=timeout_s, substrate=substrate
    )


class SubtensorTwin:
    """A one-subnet chain in memory, speaking the SDK's ``Substrate`` contract."""

    def __init__(self, tempo: int = 360) -> None:
        self.token_symbols: dict[int, str] = {}
        self.block = 100
        self.storage: dict[tuple[str, str], dict[tuple[Any, ...], Any]] = defaultdict(dict)
        self.neurons: list[dict[str, Any]] = []
        self.applied: list[Any] = []  # every call that reached the chain, in order
        self.weights: dict[str, dict[str, Any]] = {}
        self.reject: dict[str, str] = {}  # call function -> chain error name
        self.pending: dict[str, tuple[Any, str]] = {}  # shielded inner extrinsics
        self.receipts: dict[tuple[str, str], bt.ExtrinsicResult] = {}
        self.delay_s = 0.0
        self.put("Tempo", [NETUID], tempo)

    def put(self, item: str, key: list[Any], value: Any) -> None:
        self.storage[("SubtensorModule", item)][tuple(key)] = value

    def add_neuron(self, hotkey: str, coldkey: str, **fields: Any) -> int:
        uid = len(self.neurons)
        row = {"hotkey": hotkey, "coldkey": coldkey, "registered": self.block, **fields}
        self.neurons.append(row)
        self.put("Uids", [NETUID, hotkey], uid)
        return uid

    # Substrate contract: lifecycle and reads ----------------------------------

    def balance(self, rao: int, netuid: int = 0) -> bt.Balance:
        return bt.Balance(int(rao), netuid)

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def block_hash(self, block: int | None = None) -> str:
        return f"0x{self.block if block is None else block:064x}"

    async def block_number(self) -> int:
        await asyncio.sleep(self.delay_s)
        return self.block

    async def finalized_block_number(self) -> int:
        return self.block

    async def block_time(self) -> float:
        return 12.0

    async def query(self, module: str, fn: str, params: Any = None, block_hash: Any = None) -> Any:
        return self.storage[(module, fn)].get(tuple(params or []))

    async def query_map(
        self, module: str, fn: str, params: Any = None, block_hash: Any = None
    ) -> list[tuple[Any, Any]]:
        prefix = tuple(params or [])
        rows = self.storage[(module, fn)].items()
        return [(k[len(prefix) :][0], v) for k, v in rows if k[: len(prefix)] == prefix]

    async def runtime_call(self, api: str, method: str, params: list[Any], block_hash: Any) -> Any:
        assert (api, method) == ("SubnetInfoRuntimeApi", "get_metagraph")
        return self._graph() if params == [NETUID] else None

    def _graph(self) -> dict[str, Any]:
        rows = self.neurons

        def column(key: str, default: Any = 0) -> list[Any]:
            return [row.get(key, default) for row in rows]

        return {
            "netuid": NETUID, "name": "byteleap", "symbol": "β", "block": self.block,
            "tempo": self.storage[("SubtensorModule", "Tempo")][(NETUID,)],
            "last_step": 90, "blocks_since_last_step": 10, "network_registered_at": 1,
            "owner_hotkey": "owner", "owner_coldkey": "owner",
            "hotkeys": column("hotkey"), "coldkeys": column("coldkey"),
            "axons": column("axon", None), "active": column("active", True),
            "validator_permit": column("permit", False), "last_update": column("last_update"),
            "block_at_registration": column("registered"), "incentives": column("incentive"),
            "dividends": column("dividends"), "alpha_stake": column("alpha_rao"),
            "tao_stake": column("tao_rao"), "total_stake": column("stake_rao"),
        }  # fmt: skip

    # Substrate contract: writes -------------------------------------------------

    async def compose(self, call: Any) -> Any:
        return call

    async def estimate_fee(self, call: Any, keypair: Any) -> bt.Balance:
        return bt.Balance.from_rao(0)

    async def account_next_index(self, address: str) -> int:
        return 0

    async def mev_next_key(self) -> bytes:
        return bytes(1184)  # all-zero coefficients: a well-formed ML-KEM-768 key

    async def sign_extrinsic(self, call: Any, keypair: Any, *, nonce: int, period: int) -> Any:
        signature = bytes(keypair.sign(repr(call).encode()))
        digest = "0x" + hashlib.blake2b(signature, digest_size=32).hexdigest()
        self.pending[digest] = (call, keypair.ss58_address)
        return signature, digest

    async def submit(self, call: Any, keypair: Any, **_: Any) -> bt.ExtrinsicResult:
        keypair.sign(repr(call).encode())  # proves the adapter handed over an unlocked key
        self.block += 1
        if call.module != "MevShield":
            return self._apply(call, keypair.ss58_address)
        # The block author decrypts the carrier and includes the inner extrinsics.
        for digest, (inner, signer) in self.pending.items():
            self.receipts[(digest, await self.block_hash())] = self._apply(inner, signer)
        self.pending.clear()
        return self._receipt()

    async def find_extrinsic(self, digest: str, block_hash: str) -> bt.ExtrinsicResult | None:
        return self.receipts.get((digest, block_hash))

    def _receipt(self) -> bt.ExtrinsicResult:
        return bt.ExtrinsicResult(
            success=True, block_hash=f"0x{self.block:064x}", extrinsic_id=f"{self.block}-0001"
        )

    def _apply(self, call: Any, signer: str) -> bt.ExtrinsicResult:
        if call.function in self.reject:
            error = bt.ChainError(call.function + " refused", self.reject[call.function])
            return bt.ExtrinsicResult(success=False, message=error.message, error=error)
        self.applied.append(call)
        params = call.params
        if call.function == "burned_register":
            self.add_neuron(params["hotkey"], signer)
            return self._receipt()
        uid = self.storage[("SubtensorModule", "Uids")].get((NETUID, signer))
        if uid is None:
            error = bt.ChainError("not registered", "HotKeyNotRegisteredInSubNet")
            return bt.ExtrinsicResult(success=False, message=error.message, error=error)
        if call.function.startswith("serve_axon"):
            self.neurons[uid]["axon"] = {k: params[k] for k in ("ip", "port", "ip_type")}
            if "certificate" in params:
                cert = params["certificate"]
                entry = {"public_key": "0x" + cert[1:].hex(), "algorithm": cert[0]}
                self.put("NeuronCertificates", [NETUID, signer], entry)
        else:
            self.weights[signer] = dict(params)
        return self._receipt()


@pytest.fixture(autouse=True)
def sdk_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK caches token symbols on connect; keep it out of the home directory.
    monkeypatch.setenv("BTCLI_TOKEN_SYMBOLS_CACHE", str(tmp_path / "symbols.json"))
    monkeypatch.delenv("BT_WALLET_PASSWORD", raising=False)


@pytest.fixture
def twin() -> SubtensorTwin:
    return SubtensorTwin()


@pytest.fixture
def chain(twin: SubtensorTwin) -> BittensorChain:
    return on_twin(twin)


@pytest.fixture
def wallet(wallet_path: Path) -> bt.Wallet:
    create_wallet("miner", "hot", path=wallet_path)
    return bt.Wallet("miner", "hot", path=str(wallet_path))


def test_adapter_has_the_port_shape(chain: BittensorChain) -> None:
    assert isinstance(chain, ChainPort)
    assert chain.name == "bittensor" and "stake" in chain.unsupported


async def test_metagraph_maps_units_axons_and_certificates(
    twin: SubtensorTwin, chain: BittensorChain
) -> None:
    cert = spki(ed25519.Ed25519PrivateKey.generate())
    twin.add_neuron(
        "hk-validator", "ck-a", permit=True, stake_rao=1_500_000_000, alpha_rao=1_000_000_000,
        incentive=U16 // 2, dividends=U16, last_update=99,
        axon={"ip": 0x01020304, "port": 8091, "ip_type": 4},
    )  # fmt: skip
    twin.add_neuron("hk-miner", "ck-b", axon={"ip": 1, "port": 9000, "ip_type": 6})
    twin.put("NeuronCertificates", [NETUID, "hk-validator"], {"public_key": cert, "algorithm": 1})
    twin.put("NeuronCertificates", [NETUID, "hk-miner"], {"public_key": b"\x01", "algorithm": 9})

    graph = await chain.metagraph()

    assert (graph.netuid, graph.block) == (NETUID, twin.block)
    validator, miner = graph.neurons
    assert validator.model_dump() == {
        "uid": 0, "hotkey": "hk-validator", "coldkey": "ck-a", "stake": 1.5,
        "validator_permit": True, "axon_ip": "1.2.3.4", "axon_port": 8091,
        "certificate": cert.hex(), "incentive": pytest.approx(0.5, abs=1e-4),
        "dividends": 1.0, "last_update": 99, "registered_at": 100,
    }  # fmt: skip
    assert (miner.axon_ip, miner.axon_port, miner.certificate) == ("::1", 9000, None)
    assert (miner.stake, miner.validator_permit, miner.incentive) == (0.0, False, 0.0)


async def test_current_block_and_tempo(twin: SubtensorTwin, chain: BittensorChain) -> None:
    assert await chain.current_block() == 100
    assert await chain.tempo() == 360
    twin.block = 250
    assert await chain.current_block() == 250


async def test_missing_subnet_is_rejected(twin: SubtensorTwin) -> None:
    other = on_twin(twin, netuid=NETUID + 1)
    with pytest.raises(ChainRejected) as caught:
        await other.metagraph()
    assert caught.value.reason == "subnet_not_exists"
    with pytest.raises(ChainRejected):
        await other.tempo()


async def test_register_goes_through_the_shield_and_is_idempotent(
    twin: SubtensorTwin, chain: BittensorChain, wallet: bt.Wallet
) -> None:
    twin.add_neuron("someone-else", "ck")
    uid = await chain.register(wallet)
    assert uid == 1
    assert [c.function for c in twin.applied] == ["burned_register"]
    assert twin.neurons[1]["coldkey"] == wallet.coldkeypub.ss58_address
    assert await chain.register(wallet) == uid
    assert len(twin.applied) == 1


async def test_serve_axon_plain_and_with_certificate(
    twin: SubtensorTwin, chain: BittensorChain, wallet: bt.Wallet
) -> None:
    await chain.register(wallet)
    await chain.serve_axon(wallet, "10.0.0.5", 8443)
    neuron = (await chain.metagraph()).by_hotkey(wallet.hotkey.ss58_address)
    assert neuron is not None
    assert (neuron.axon_ip, neuron.axon_port, neuron.certificate) == ("10.0.0.5", 8443, None)

    cert = spki(ed25519.Ed25519PrivateKey.generate())
    await chain.serve_axon(wallet, "2001:db8::7", 9443, certificate=cert)
    neuron = (await chain.metagraph()).by_hotkey(wallet.hotkey.ss58_address)
    assert neuron is not None
    assert (neuron.axon_ip, neuron.axon_port) == ("2001:db8::7", 9443)
    assert neuron.certificate == cert.hex()
    assert twin.applied[-1].function == "serve_axon_tls"


@pytest.mark.parametrize(
    ("ip", "port", "certificate"),
    [
        ("not-an-ip", 8091, None),
        ("10.0.0.1", 0, None),
        ("10.0.0.1", 8091, b"not a key"),
        ("10.0.0.1", 8091, spki(ec.generate_private_key(ec.SECP256R1()))),  # 91 bytes > 64
    ],
)
async def test_bad_serve_arguments_are_rejected_before_signing(
    twin: SubtensorTwin,
    chain: BittensorChain,
    wallet: bt.Wallet,
    ip: str,
    port: int,
    certificate: bytes | None,
) -> None:
    with pytest.raises(ChainRejected) as caught:
        await chain.serve_axon(wallet, ip, port, certificate)
    assert caught.value.reason == "invalid_argument"
    assert twin.applied == []


@given(st.sampled_from(["ed25519", "p256"]), st.booleans())
def test_certificate_payload_round_trips_through_storage(kind: str, as_list: bool) -> None:
    key = ed25519.Ed25519PrivateKey.generate() if kind == "ed25519" else None
    if key is None:
        with pytest.raises(ChainRejected):
            certificate_payload(spki(ec.generate_private_key(ec.SECP256R1())))
        return
    der = spki(key)
    raw = bytes.fromhex(certificate_payload(der).removeprefix("0x"))
    stored = {"algorithm": raw[0], "public_key": list(raw[1:]) if as_list else raw[1:].hex()}
    assert certificate_hex(stored) == der.hex()


async def test_set_weights_are_quantised_by_the_sdk(
    twin: SubtensorTwin, chain: BittensorChain, wallet: bt.Wallet
) -> None:
    await chain.register(wallet)
    twin.add_neuron("m1", "c1")
    twin.add_neuron("m2", "c2")
    await chain.set_weights(wallet, [1, 2], [0.25, 0.75], version_key=42)
    sent = twin.weights[wallet.hotkey.ss58_address]
    assert sent["dests"] == [1, 2]
    assert sent["weights"] == [round(U16 / 3), U16]
    assert (sent["netuid"], sent["version_key"]) == (NETUID, 42)


async def test_set_weights_with_commit_reveal_sends_a_timelocked_commit(
    twin: SubtensorTwin, chain: BittensorChain, wallet: bt.Wallet
) -> None:
    await chain.register(wallet)
    twin.put("CommitRevealWeightsEnabled", [NETUID], True)
    twin.put("RevealPeriodEpochs", [NETUID], 1)
    await chain.set_weights(wallet, [0], [1.0], version_key=1)
    assert twin.applied[-1].function == "commit_timelocked_mechanism_weights"
    assert twin.weights[wallet.hotkey.ss58_address]["commit"]


async def test_unregistered_hotkey_cannot_set_weights(
    twin: SubtensorTwin, chain: BittensorChain, wallet: bt.Wallet
) -> None:
    with pytest.raises(ChainRejected) as caught:
        await chain.set_weights(wallet, [0], [1.0], version_key=0)
    assert caught.value.reason == "not_registered"
    with pytest.raises(ChainRejected) as caught:
        await chain.set_weights(wallet, [0, 1], [1.0], version_key=0)
    assert caught.value.reason == "invalid_argument"


async def test_chain_side_refusal_keeps_its_code(
    twin: SubtensorTwin, chain: BittensorChain, wallet: bt.Wallet
) -> None:
    await chain.register(wallet)
    twin.reject["serve_axon"] = "ServingRateLimitExceeded"
    with pytest.raises(ChainRejected) as caught:
        await chain.serve_axon(wallet, "10.0.0.5", 8443)
    assert caught.value.reason == "rate_limited"
    assert caught.value.context["name"] == "ServingRateLimitExceeded"
    twin.reject["serve_axon"] = "BadProof"
    with pytest.raises(ChainAuthError):
        await chain.serve_axon(wallet, "10.0.0.5", 8443)


async def test_missing_or_locked_keys_are_auth_errors(
    chain: BittensorChain, wallet_path: Path
) -> None:
    with pytest.raises(ChainAuthError) as caught:
        await chain.serve_axon(bt.Wallet("nobody", "hot", path=str(wallet_path)), "1.2.3.4", 1)
    assert caught.value.reason == "key_unavailable"
    create_wallet("locked", "hot", path=wallet_path, password="correct horse")
    with pytest.raises(ChainAuthError):
        await chain.register(bt.Wallet("locked", "hot", path=str(wallet_path)))


async def test_slow_chain_times_out_as_unavailable(twin: SubtensorTwin) -> None:
    twin.delay_s = 5.0
    slow = on_twin(twin, timeout_s=0.05)
    with pytest.raises(ChainUnavailable) as caught:
        await slow.current_block()
    assert caught.value.reason == "timeout"


async def test_unreachable_endpoint_is_unavailable(free_port: Callable[[], int]) -> None:
    chain = BittensorChain(f"ws://127.0.0.1:{free_port()}", netuid=NETUID, timeout_s=10)
    try:
        with pytest.raises(ChainUnavailable):
            await chain.current_block()
    finally:
        await chain.close()


def test_unknown_network_name_is_unavailable() -> None:
    with pytest.raises(ChainUnavailable) as caught:
        BittensorChain("no-such-net", netuid=1)
    assert caught.value.reason == "unknown_network"


def _sdk_error_classes() -> set[type[BaseException]]:
    import bittensor.vault.server  # noqa: F401  (defines an error class)

    found: set[type[BaseException]] = set()
    todo: list[type[BaseException]] = [bt.BittensorError, SubstrateRequestException]
    while todo:
        cls = todo.pop()
        found.add(cls)
        todo.extend(cls.__subclasses__())
    sdk = {c for c in found if c.__module__.split(".")[0] in {"bittensor", "bittensor_core"}}
    core = [bittensor_core.KeyfileError, bittensor_core.WrongPasswordError]
    return sdk | {*core, bittensor_core.LedgerError, bt.UnitMismatchError}


# What each SDK exception class must become; a new SDK class fails the test below
# until someone decides where it belongs.
EXPECTED: dict[str, type[ChainError]] = {
    "BittensorError": ChainRejected, "ChainError": ChainRejected,
    "PolicyError": ChainRejected, "TimelockError": ChainRejected,
    "TimelockNotReady": ChainRejected, "MultisigFundingError": ChainRejected,
    "UnitMismatchError": ChainRejected,
    "ConnectionNotReady": ChainUnavailable, "RpcConnectionError": ChainUnavailable,
    "RpcPolicyError": ChainUnavailable, "SubstrateRequestException": ChainUnavailable,
    "MaxRetriesExceeded": ChainUnavailable, "RpcPolicyRejection": ChainUnavailable,
    "StateDiscardedError": ChainUnavailable, "BlockNotFound": ChainUnavailable,
    "ExtrinsicNotFound": ChainUnavailable,
    "VaultError": ChainAuthError, "AuthError": ChainAuthError,
    # The vault's browser page; never reached (the adapter signs with keyfiles).
    "VaultPageError": ChainRejected,
    "MalformedAuth": ChainAuthError, "WrongReceiver": ChainAuthError,
    "StaleRequest": ChainAuthError, "ReplayedRequest": ChainAuthError,
    "BadSignature": ChainAuthError, "LedgerError": ChainAuthError,
    "KeyfileError": ChainAuthError, "WrongPasswordError": ChainAuthError,
}  # fmt: skip


def _instance(cls: type[BaseException]) -> BaseException:
    if cls is MultisigFundingError:
        return cls("cannot pay the deposit", fund_help="fund the signer")
    if issubclass(cls, bt.ChainError):
        return cls("refused")
    if issubclass(cls, bt.PolicyError):
        return cls(["over the cap"])
    if issubclass(cls, SubstrateRequestException) and cls.__name__ == "StateDiscardedError":
        return cls("0xabc")
    return cls.__new__(cls)


def test_every_sdk_exception_class_has_a_decided_mapping() -> None:
    classes = _sdk_error_classes()
    assert {c.__name__ for c in classes} - EXPECTED.keys() == set()
    for cls in classes:
        translated = chain_error_from_sdk(_instance(cls))
        assert type(translated) is EXPECTED[cls.__name__], cls
        assert isinstance(translated, ChainError) and translated.reason


def test_a_dropped_socket_under_a_failed_submit_is_unavailable() -> None:
    failed = bt.ChainError("connection reset")
    failed.__cause__ = ConnectionResetError("reset by peer")
    assert isinstance(chain_error_from_sdk(failed), ChainUnavailable)
    with pytest.raises(TypeError):
        chain_error_from_sdk(KeyError("not from the SDK"))


LIVE = os.environ.get("BYTELEAP_SUBTENSOR")
live = pytest.mark.skipif(not LIVE, reason="BYTELEAP_SUBTENSOR is not set (no chain endpoint)")


@pytest.mark.live
@live
async def test_live_metagraph_and_block() -> None:
    assert LIVE is not None
    netuid = int(os.environ.get("BYTELEAP_SUBTENSOR_NETUID", "1"))
    chain = BittensorChain(LIVE, netuid=netuid, timeout_s=60)
    try:
        block = await chain.current_block()
        graph = await chain.metagraph()
        assert graph.netuid == netuid and graph.block >= block > 0
        assert graph.neurons and [n.uid for n in graph.neurons] == list(range(len(graph.neurons)))
        assert all(0 <= n.incentive <= 1 and n.stake >= 0 for n in graph.neurons)
        assert await chain.tempo() > 0
    finally:
        await chain.close()


LIVE_HOTKEY = os.environ.get("BYTELEAP_LIVE_HOTKEY")


@pytest.mark.live
@live
@pytest.mark.skipif(not LIVE_HOTKEY, reason="BYTELEAP_LIVE_HOTKEY is not set (no hotkey to find)")
async def test_live_hotkey_is_registered_and_its_axon_published() -> None:
    """docs/operate.md's testnet checklist: the operator's hotkey (ss58) holds a uid on the
    netuid; a miner's (BYTELEAP_LIVE_ROLE=miner) also has its axon and certificate on chain."""
    assert LIVE is not None and LIVE_HOTKEY is not None
    netuid = int(os.environ.get("BYTELEAP_SUBTENSOR_NETUID", "1"))
    chain = BittensorChain(LIVE, netuid=netuid, timeout_s=60)
    try:
        neuron = (await chain.metagraph()).by_hotkey(LIVE_HOTKEY)
    finally:
        await chain.close()
    assert neuron is not None, f"{LIVE_HOTKEY} holds no uid on netuid {netuid}"
    if os.environ.get("BYTELEAP_LIVE_ROLE") == "miner":
        assert neuron.axon_ip and neuron.axon_port, "no axon published"
        assert neuron.certificate, "no TLS certificate published"
