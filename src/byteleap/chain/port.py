"""The chain port: what byteleap needs from a chain, in one small interface.

Two adapters implement it and are chosen by name (``chain.adapter`` in config):
``local`` (the embedded devnet chain service, :mod:`byteleap.chain.local`) and
``bittensor`` (the real chain through the SDK, :mod:`byteleap.chain.bittensor_adapter`).
Everything above the port — validator, miner, gateway, devnet — is the same for both.

What an adapter cannot do is declared in its ``unsupported`` table
(feature → reason), never discovered by a crash.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from byteleap.errors import ByteleapError

if TYPE_CHECKING:
    from bittensor import Wallet


class ChainError(ByteleapError):
    """Base of chain errors.

    ChainError
     ├── ChainUnavailable   the chain endpoint cannot be reached     (reason: unavailable)
     ├── ChainAuthError     a write was unsigned, forged or replayed (reason: auth)
     ├── ChainRejected      the chain refused a well-formed write    (reason: rejected / …)
     └── ChainUnsupported   the adapter cannot do this feature       (reason: unsupported)
    """

    reason = "chain_error"


class ChainUnavailable(ChainError):
    reason = "unavailable"


class ChainAuthError(ChainError):
    reason = "auth"


class ChainRejected(ChainError):
    reason = "rejected"


class ChainUnsupported(ChainError):
    reason = "unsupported"


class NeuronInfo(BaseModel):
    """One neuron of the subnet as the metagraph shows it."""

    model_config = ConfigDict(frozen=True)

    uid: int = Field(ge=0)
    hotkey: str
    coldkey: str
    stake: float = Field(ge=0)
    validator_permit: bool = False
    axon_ip: str | None = None
    axon_port: int | None = Field(default=None, ge=0, le=65535)
    # Hex of the node's TLS public key (DER SubjectPublicKeyInfo); peers pin it.
    certificate: str | None = None
    incentive: float = 0.0
    dividends: float = 0.0
    last_update: int = 0
    registered_at: int = 0


class Metagraph(BaseModel):
    """A snapshot of one subnet at one block."""

    netuid: int
    block: int
    neurons: list[NeuronInfo]

    def by_hotkey(self, hotkey: str) -> NeuronInfo | None:
        return next((n for n in self.neurons if n.hotkey == hotkey), None)

    def by_uid(self, uid: int) -> NeuronInfo | None:
        return next((n for n in self.neurons if n.uid == uid), None)

    def validators(self) -> list[NeuronInfo]:
        return [n for n in self.neurons if n.validator_permit]


@runtime_checkable
class ChainPort(Protocol):
    """The shape every chain adapter has. All methods are async."""

    name: ClassVar[str]
    # feature -> reason it is not available with this adapter
    unsupported: ClassVar[dict[str, str]]

    async def metagraph(self) -> Metagraph: ...

    async def current_block(self) -> int: ...

    async def tempo(self) -> int: ...

    async def register(self, wallet: Wallet) -> int:
        """Register the wallet's hotkey on the subnet; returns its uid (idempotent)."""
        ...

    async def serve_axon(
        self, wallet: Wallet, ip: str, port: int, certificate: bytes | None = None
    ) -> None:
        """Publish the axon address, optionally with the TLS public key peers pin."""
        ...

    async def set_weights(
        self, wallet: Wallet, uids: list[int], weights: list[float], version_key: int
    ) -> None: ...

    async def close(self) -> None: ...
