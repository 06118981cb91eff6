"""Helpers for the private-network tests: keys, tenants and leases in a real store."""

from __future__ import annotations

import itertools
import secrets
import time
from dataclasses import dataclass

from bittensor import sp_core

from byteleap.gateway.private_networks import TenantNetworks
from byteleap.net.wireguard import JoinRequest, NetworkSettings, WireGuardKeyPair, sign_join
from byteleap.protocol.api import LeaseState
from byteleap.store import LeaseRecord, Store, create_tenant, insert_lease

_ids = itertools.count()


def keypair() -> sp_core.Keypair:
    return sp_core.Keypair.create_from_mnemonic(sp_core.Keypair.generate_mnemonic())


@dataclass
class Parties:
    gateway: sp_core.Keypair
    miner_a: sp_core.Keypair
    miner_b: sp_core.Keypair


def parties() -> Parties:
    return Parties(gateway=keypair(), miner_a=keypair(), miner_b=keypair())


async def new_tenant(store: Store, name: str | None = None) -> int:
    async with store.session() as s:
        tenant = await create_tenant(
            s, name or f"t-{secrets.token_hex(4)}", balance=100.0, at=int(time.time())
        )
    return tenant.id


async def new_lease(
    store: Store, tenant_id: int, miner_hotkey: str, *, duration_s: float = 3600.0
) -> str:
    now = time.time()
    record = LeaseRecord(
        id=f"lease_{next(_ids):04d}{secrets.token_hex(4)}",
        tenant_id=tenant_id,
        state=LeaseState.ACTIVE,
        spec_json="{}",
        worker_id=f"w-{secrets.token_hex(8)}",
        miner_hotkey=miner_hotkey,
        gpu_model="cpu",
        gpu_count=1,
        price_per_s=0.0001,
        unit_price_micro=100,
        created_at=now,
        ends_at=now + duration_s,
        ended_at=None,
        billed_until=now,
        cost=0.0,
        receipts=0,
    )
    async with store.session() as s:
        await insert_lease(s, record)
    return record.id


def networks(store: Store, p: Parties, **settings: object) -> TenantNetworks:
    return TenantNetworks(
        store=store,
        gateway=p.gateway,
        gateway_hotkey=p.gateway.ss58_address,
        settings=NetworkSettings.model_validate(settings),
    )


def join_request(
    miner: sp_core.Keypair,
    gateway_hotkey: str,
    *,
    lease_id: str,
    tenant_id: int,
    public_key: str | None = None,
    endpoint: str = "192.0.2.10:51820",
) -> tuple[dict[str, str], bytes]:
    request = JoinRequest(
        lease_id=lease_id,
        tenant_id=tenant_id,
        public_key=public_key or WireGuardKeyPair.generate().public_key,
        endpoint=endpoint,
    )
    return sign_join(miner, request, gateway_hotkey=gateway_hotkey)
