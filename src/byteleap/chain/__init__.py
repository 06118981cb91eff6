"""The chain port and its adapters, chosen by name.

``open_chain(settings)`` returns the adapter named by ``settings.adapter``:
``local`` (the devnet chain service) or ``bittensor`` (the real chain via the SDK).
"""

from __future__ import annotations

from byteleap.chain.port import (
    ChainAuthError,
    ChainError,
    ChainPort,
    ChainRejected,
    ChainUnavailable,
    ChainUnsupported,
    Metagraph,
    NeuronInfo,
)
from byteleap.config import ChainSettings

__all__ = [
    "ChainAuthError",
    "ChainError",
    "ChainPort",
    "ChainRejected",
    "ChainUnavailable",
    "ChainUnsupported",
    "Metagraph",
    "NeuronInfo",
    "open_chain",
]


def open_chain(settings: ChainSettings) -> ChainPort:
    """The adapter for ``settings.adapter``; imports only the one it needs."""
    if settings.adapter == "local":
        from byteleap.chain.local.client import LocalChain

        return LocalChain(settings.url, netuid=settings.netuid, timeout_s=settings.timeout_s)
    from byteleap.chain.bittensor_adapter import BittensorChain

    return BittensorChain(settings.network, netuid=settings.netuid, timeout_s=settings.timeout_s)
