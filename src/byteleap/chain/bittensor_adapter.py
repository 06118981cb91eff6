"""The ``bittensor`` chain adapter: the chain port over the bittensor SDK v11.

One async :class:`bittensor.Client` per adapter, opened on first use. Writes go
through the SDK's intents (``BurnedRegister``, ``ServeAxon``/``ServeAxonTls``,
``SetWeights``), so clipping, u16 quantisation, commit-reveal and the MEV
shield stay the SDK's business.

Units of the mapped metagraph (``byteleap.chain.port.NeuronInfo``):
- ``stake``: the neuron's total stake weight (alpha + root TAO × tao weight, the
  figure the chain ranks validator permits by) in whole tokens, rao / 1e9. It is
  deliberately not valued through the pool price, which moves every block.
- ``incentive`` / ``dividends``: fractions 0..1 (the chain's u16 / 65535).
- ``certificate``: hex of the DER SubjectPublicKeyInfo published with
  ``serve_axon``; the chain stores it as one format byte + at most 64 key bytes.

Every SDK exception is translated here, once, by :func:`chain_error_from_sdk`.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, ClassVar

import bittensor as bt
import bittensor_core
from bittensor._transport.errors import SubstrateRequestException
from bittensor.wallets import resolve_wallet_password
from cryptography.hazmat.primitives.serialization import load_der_public_key

from byteleap.chain.port import (
    ChainAuthError,
    ChainError,
    ChainRejected,
    ChainUnavailable,
    Metagraph,
    NeuronInfo,
)

logger = logging.getLogger(__name__)

RAO_PER_TOKEN = 10**9
# Format byte of byteleap's neuron certificates: the key field holds a DER SPKI.
CERTIFICATE_FORMAT_SPKI_DER = 1
CERTIFICATE_MAX_KEY_BYTES = 64

# Storage items as (pallet, item), the descriptor shape ``Client.query`` takes.
_TEMPO = ("SubtensorModule", "Tempo")
_UIDS = ("SubtensorModule", "Uids")
_NEURON_CERTIFICATES = ("SubtensorModule", "NeuronCertificates")

# Chain error names that mean the signature itself was refused (forged, wrong
# signer, replayed nonce) rather than the call.
_AUTH_ERROR_NAMES = frozenset({"BadProof", "BadSigner", "Stale", "BadOrigin"})

# (SDK exception, port error, reason); first match wins, so specific first.
SDK_ERRORS: tuple[tuple[type[BaseException], type[ChainError], str], ...] = (
    (bt.RpcPolicyError, ChainUnavailable, "rpc_policy"),
    (bt.RpcConnectionError, ChainUnavailable, "unavailable"),
    (bt.ConnectionNotReady, ChainUnavailable, "unavailable"),
    # Private transport errors escape only from subscriptions; all are I/O.
    (SubstrateRequestException, ChainUnavailable, "unavailable"),
    (bt.PolicyError, ChainRejected, "policy_violation"),
    (bt.TimelockError, ChainRejected, "timelock"),
    (bt.VaultError, ChainAuthError, "auth"),
    (bt.http_auth.AuthError, ChainAuthError, "auth"),
    (bittensor_core.LedgerError, ChainAuthError, "auth"),
    (bittensor_core.KeyfileError, ChainAuthError, "key_unavailable"),
    (bittensor_core.WrongPasswordError, ChainAuthError, "key_unavailable"),
    (bt.UnitMismatchError, ChainRejected, "invalid_argument"),
    (TimeoutError, ChainUnavailable, "timeout"),
    (ConnectionError, ChainUnavailable, "unavailable"),
    (bt.BittensorError, ChainRejected, "invalid_argument"),
)


def chain_error_from_sdk(error: BaseException) -> ChainError:
    """The port error for an SDK exception (the one place the SDK's errors cross)."""
    if isinstance(error, ChainError):
        return error
    if isinstance(error, bt.ChainError):
        return _from_sdk_chain_error(error)
    for sdk_type, port_type, reason in SDK_ERRORS:
        if isinstance(error, sdk_type):
            return port_type(
                str(error) or type(error).__name__, reason=reason, sdk=type(error).__name__
            )
    raise TypeError(f"not an SDK error: {type(error).__name__}") from error


def _from_sdk_chain_error(error: bt.ChainError) -> ChainError:
    # A failed submit wraps its cause: a dropped socket is not a rejection.
    cause = error.__cause__
    if isinstance(cause, (OSError, SubstrateRequestException)) and not isinstance(
        cause, FileNotFoundError | PermissionError
    ):
        return ChainUnavailable(error.message, sdk="ChainError", name=error.name)
    context = {"sdk": "ChainError", "name": error.name, "code": error.code.value}
    if error.name in _AUTH_ERROR_NAMES:
        return ChainAuthError(error.message, **context)
    reason = "rejected" if error.code is bt.ErrorCode.UNKNOWN else error.code.value
    return ChainRejected(error.message, reason=reason, **context)


class BittensorChain:
    """The chain port over a bittensor endpoint (network name or ws(s):// URL)."""

    name: ClassVar[str] = "bittensor"
    unsupported: ClassVar[dict[str, str]] = {
        "stake": "staking moves real TAO; do it with btcli, not from a running node",
        "mint": "the real chain has no faucet",
        "advance_blocks": "the real chain keeps its own clock",
    }

    def __init__(
        self,
        network: str,
        *,
        netuid: int,
        timeout_s: float = 30.0,
        substrate: bt.Substrate | None = None,
    ) -> None:
        """``substrate`` swaps the SDK's RPC backend (e.g. an in-memory one in tests)."""
        try:
            self._client = bt.Client(network, substrate=substrate)
        except ValueError as error:  # the SDK's "unknown network"
            raise ChainUnavailable(str(error), reason="unknown_network", network=network) from error
        self.network = network
        self.netuid = netuid
        self.timeout_s = timeout_s
        self._connected = False
        self._connect_lock = asyncio.Lock()

    @asynccontextmanager
    async def _sdk(self, operation: str) -> AsyncIterator[bt.Client]:
        """A connected client; any SDK error or a timeout becomes a port error."""
        try:
            async with asyncio.timeout(self.timeout_s):
                async with self._connect_lock:
                    if not self._connected:
                        await self._client.connect()
                        self._connected = True
                yield self._client
        except ChainError:
            raise
        except TimeoutError as error:
            raise ChainUnavailable(
                f"{operation} took longer than {self.timeout_s}s",
                reason="timeout",
                operation=operation,
            ) from error
        except Exception as error:
            if isinstance(error, tuple(t for t, _, _ in SDK_ERRORS)):
                raise chain_error_from_sdk(error) from error
            raise

    async def metagraph(self) -> Metagraph:
        async with self._sdk("metagraph") as client:
            graph = await client.subnets.metagraph(self.netuid, commitments=False)
            if graph is None:
                raise ChainRejected(
                    f"subnet {self.netuid} does not exist on {self.network}",
                    reason="subnet_not_exists",
                    netuid=self.netuid,
                )
            rows = await client.query_map(_NEURON_CERTIFICATES, [self.netuid], block=graph.block)
        certificates = {str(hotkey): certificate_hex(value) for hotkey, value in rows}
        return metagraph_from_sdk(graph, certificates)

    async def current_block(self) -> int:
        async with self._sdk("current_block") as client:
            return int(await client.block())

    async def tempo(self) -> int:
        async with self._sdk("tempo") as client:
            value = await client.query(_TEMPO, [self.netuid])
        if value is None:
            raise ChainRejected(
                f"subnet {self.netuid} has no tempo", reason="subnet_not_exists", netuid=self.netuid
            )
        return int(value)

    async def register(self, wallet: bt.Wallet) -> int:
        hotkey = (await _signing_key(wallet, "hotkey")).ss58_address
        uid = await self._uid_of(hotkey)
        if uid is not None:
            return uid
        coldkey = await _signing_key(wallet, "coldkey")
        intent = bt.BurnedRegister(netuid=self.netuid, hotkey_ss58=hotkey)
        await self._execute("register", intent, coldkey)
        uid = await self._uid_of(hotkey)
        if uid is None:
            raise ChainRejected(
                f"registration of {hotkey} was included but no uid was assigned",
                reason="not_registered",
                hotkey=hotkey,
            )
        return uid

    async def serve_axon(
        self, wallet: bt.Wallet, ip: str, port: int, certificate: bytes | None = None
    ) -> None:
        try:
            ipaddress.ip_address(ip)
        except ValueError as error:
            raise ChainRejected(str(error), reason="invalid_argument", ip=ip) from error
        if not 0 < port < 65536:
            raise ChainRejected(f"port {port} out of range", reason="invalid_argument", port=port)
        intent: bt.Intent
        if certificate is None:
            intent = bt.ServeAxon(netuid=self.netuid, ip=ip, port=port)
        else:
            encoded = certificate_payload(certificate)
            intent = bt.ServeAxonTls(netuid=self.netuid, ip=ip, port=port, certificate=encoded)
        await self._execute("serve_axon", intent, await _signing_key(wallet, "hotkey"))

    async def set_weights(
        self, wallet: bt.Wallet, uids: list[int], weights: list[float], version_key: int
    ) -> None:
        if len(uids) != len(weights):
            raise ChainRejected(
                f"{len(uids)} uids but {len(weights)} weights", reason="invalid_argument"
            )
        hotkey = await _signing_key(wallet, "hotkey")
        async with self._sdk("set_weights"):  # the intent validates (duplicates, NaN)
            intent = bt.SetWeights(
                netuid=self.netuid, uids=list(uids), weights=list(weights), version_key=version_key
            )
        await self._execute("set_weights", intent, hotkey)

    async def close(self) -> None:
        if self._connected:
            self._connected = False
            try:
                await self._client.close()
            except Exception as error:  # closing a dead socket is not worth raising
                logger.debug("closing the bittensor client failed: %s", error)

    async def _uid_of(self, hotkey: str) -> int | None:
        async with self._sdk("uid") as client:
            uid = await client.query(_UIDS, [self.netuid, hotkey])
        return None if uid is None else int(uid)

    async def _execute(self, operation: str, intent: bt.Intent, signer: Any) -> None:
        async with self._sdk(operation) as client:
            # Inclusion, not finality: a validator loop must not wait ~3 blocks more.
            result = await client.execute(intent, signer, wait_for_finalization=False)
            result.raise_for_failure()
        logger.info("%s on netuid %d: %s", operation, self.netuid, result.extrinsic_id)


async def _signing_key(wallet: bt.Wallet, role: str) -> Any:
    """The unlocked keypair for ``role``; never prompts (a node has no terminal)."""

    def unlock() -> Any:
        if role == "hotkey":
            return wallet.hotkey
        password = resolve_wallet_password(wallet)
        if password is None and wallet.coldkey_file.is_encrypted():
            raise ChainAuthError(
                f"coldkey of wallet {wallet.name!r} is encrypted and no password is set "
                "(BT_WALLET_PASSWORD or BT_WALLET_PASSWORD_FILE)",
                reason="key_unavailable",
            )
        return wallet.get_coldkey(password=password)

    try:
        return await asyncio.to_thread(unlock)
    except (OSError, ValueError, bittensor_core.KeyfileError) as error:
        # Only key files are read here, so any of these means "cannot sign".
        raise ChainAuthError(
            f"cannot load the {role} of wallet {wallet.name!r}: {error}",
            reason="key_unavailable",
            role=role,
        ) from error


def certificate_payload(certificate: bytes) -> str:
    """The ``ServeAxonTls`` certificate field for a DER SPKI public key."""
    try:
        load_der_public_key(certificate)
    except ValueError as error:
        raise ChainRejected(
            "certificate is not a DER SubjectPublicKeyInfo", reason="invalid_argument"
        ) from error
    if len(certificate) > CERTIFICATE_MAX_KEY_BYTES:
        raise ChainRejected(
            f"a {len(certificate)}-byte key does not fit the chain's "
            f"{CERTIFICATE_MAX_KEY_BYTES}-byte certificate field (use Ed25519)",
            reason="invalid_argument",
        )
    return "0x" + bytes([CERTIFICATE_FORMAT_SPKI_DER]).hex() + certificate.hex()


def certificate_hex(value: Any) -> str | None:
    """Hex of the SPKI in a stored ``NeuronCertificate``; None for other formats."""
    if not isinstance(value, dict) or int(value.get("algorithm", -1)) != (
        CERTIFICATE_FORMAT_SPKI_DER
    ):
        return None
    key = value.get("public_key")
    if isinstance(key, str):
        return key.removeprefix("0x").lower() or None
    if isinstance(key, bytes | bytearray | list | tuple):
        return bytes(key).hex() or None
    return None


def metagraph_from_sdk(graph: bt.Metagraph, certificates: dict[str, str | None]) -> Metagraph:
    """Map the SDK's metagraph (and the certificate map by hotkey) onto the port's."""
    return Metagraph(
        netuid=graph.netuid,
        block=graph.block,
        neurons=[neuron_from_sdk(n, certificates.get(n.hotkey)) for n in graph.neurons],
    )


def neuron_from_sdk(neuron: bt.MetagraphNeuron, certificate: str | None) -> NeuronInfo:
    ip, port = _split_axon(neuron.axon)
    return NeuronInfo(
        uid=neuron.uid,
        hotkey=neuron.hotkey,
        coldkey=neuron.coldkey,
        stake=neuron.total_stake.rao / RAO_PER_TOKEN,
        validator_permit=neuron.validator_permit,
        axon_ip=ip,
        axon_port=port,
        certificate=certificate,
        incentive=neuron.incentive,
        dividends=neuron.dividends,
        last_update=neuron.last_update,
        registered_at=neuron.block_at_registration,
    )


def _split_axon(axon: str | None) -> tuple[str | None, int | None]:
    """``"1.2.3.4:8091"`` / ``"[::1]:8091"`` (the SDK's rendering) → (ip, port)."""
    if not axon:
        return None, None
    host, _, port = axon.rpartition(":")
    return host.strip("[]"), int(port)
