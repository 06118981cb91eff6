"""Lease receipts signed with real sr25519 keys, for the receipt and lease-revenue tests."""

from __future__ import annotations

from typing import Any

from bittensor import sp_core

from byteleap.net.receipts import (
    LeaseReceipt,
    anonymous_lease_id,
    countersign_as_miner,
    new_receipt,
    sign_as_gateway,
)


def fresh_key() -> Any:
    return sp_core.Keypair.create_from_mnemonic(sp_core.Keypair.generate_mnemonic())


GATEWAY = fresh_key()
MINER = fresh_key()
OTHER_MINER = fresh_key()
ATTACKER = fresh_key()
SECRET = b"gateway-lease-secret-0123456789"
NETUID = 7
NOW = 1_700_003_600
LEASE = anonymous_lease_id("lease-42", SECRET)
VALIDATORS = frozenset({GATEWAY.ss58_address})
MINERS = frozenset({MINER.ss58_address, OTHER_MINER.ss58_address})


def unsigned(**overrides: Any) -> LeaseReceipt:
    fields: dict[str, Any] = {
        "lease_id": LEASE,
        "netuid": NETUID,
        "gateway_hotkey": GATEWAY.ss58_address,
        "miner_hotkey": MINER.ss58_address,
        "worker_id": "w-0001",
        "gpu_model": "NVIDIA H100 80GB HBM3",
        "gpu_count": 2,
        "period_start": NOW - 600,
        "period_end": NOW - 300,
        "unit_price_micro": 550,  # 0.00055 per GPU-second
        "currency": "USD",
    }
    return new_receipt(**(fields | overrides))


def signed(**overrides: Any) -> LeaseReceipt:
    miner = overrides.pop("miner_key", MINER)
    return countersign_as_miner(sign_as_gateway(unsigned(**overrides), GATEWAY), miner)
