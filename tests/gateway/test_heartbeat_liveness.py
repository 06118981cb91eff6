"""Lease liveness at the gateway against a miner that vouches for its worker itself.

The gateway's real `LeaseDesk` and `LeaseWatch` on a real store, one clock for both, and an
in-process miner that answers probes the way a cheater would: alive on its own word, with an
earlier probe's heartbeat, or with a heartbeat signed by another key. Each fails the probe
with its reason, degrades the lease and stops billing at the last probe the worker itself
signed; the honest miner's lease keeps being billed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from byteleap.config import GatewaySettings
from byteleap.gateway.leasing import LeaseDesk, view_of
from byteleap.gateway.liveness import LeaseWatch
from byteleap.gateway.port import Tenant
from byteleap.gateway.scheduler import WorkerOffer, WorkerState
from byteleap.net.heartbeat import LeaseHeartbeat, sign_heartbeat
from byteleap.net.messages import LeaseLiveness, LeaseRequest, LeaseStatus
from byteleap.net.receipts import LeaseReceipt, countersign_as_miner
from byteleap.protocol.api import LeaseSpec, LeaseView
from byteleap.store import Store, open_store, upgrade
from byteleap.store.cloud import create_tenant
from byteleap.store.leases import get_lease
from byteleap.store.receipts import ReceiptRecord, receipts_in_window
from net.receipt_samples import GATEWAY, MINER

T0 = 1_700_000_000.0
LEASED = "w-00000000000000a1"
NEIGHBOUR = "w-00000000000000b2"  # another worker of the same miner


def public_hex(key: Ed25519PrivateKey) -> str:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


@dataclass
class CheatingMiner:
    """Holds its workers' keys only to play them: ``mode`` says who answers a probe.

    honest: the leased worker signs for the probe's nonce; self: the miner says alive and
    nobody signs; replay: the first heartbeat the worker ever gave is sent again; other_key:
    the neighbour worker's key signs in the leased worker's name."""

    clock: Clock
    keys: dict[str, Ed25519PrivateKey]
    mode: str = "honest"
    leases: dict[str, LeaseRequest] = field(default_factory=dict)
    heartbeats: list[LeaseHeartbeat] = field(default_factory=list)
    probes: int = 0

    def _sign(self, key: Ed25519PrivateKey, lease_id: str, worker: str, nonce: str) -> Any:
        return sign_heartbeat(
            key.sign,
            lease_id=lease_id,
            worker_id=worker,
            nonce=nonce,
            alive=True,
            signed_at_ms=int(self.clock() * 1000),
        )

    async def lease_alive(
        self, lease_id: str, *, timeout_s: float, nonce: str | None = None
    ) -> LeaseLiveness:
        self.probes += 1
        assert nonce is not None and len(bytes.fromhex(nonce)) >= 16  # ≥ 128 bits, every probe
        worker = self.leases[lease_id].worker_id
        heartbeat: LeaseHeartbeat | None = None
        if self.mode == "honest":
            heartbeat = self._sign(self.keys[worker], lease_id, worker, nonce)
            self.heartbeats.append(heartbeat)
        elif self.mode == "replay":
            heartbeat = self.heartbeats[0]
        elif self.mode == "other_key":
            heartbeat = self._sign(self.keys[NEIGHBOUR], lease_id, worker, nonce)
        return LeaseLiveness(lease_id=lease_id, alive=True, reason="ok", heartbeat=heartbeat)

    async def start_lease(self, request: LeaseRequest) -> LeaseStatus:
        self.leases[request.lease_id] = request
        return self._status(request, active=True)

    async def release_lease(self, lease_id: str) -> LeaseStatus:
        return self._status(self.leases[lease_id], active=False)

    async def countersign(self, receipt: LeaseReceipt) -> LeaseReceipt:
        return countersign_as_miner(receipt, MINER)

    def _status(self, request: LeaseRequest, *, active: bool) -> LeaseStatus:
        return LeaseStatus(
            lease_id=request.lease_id,
            worker_id=request.worker_id,
            active=active,
            started_at=T0,
            ends_at=request.ends_at,
        )


@dataclass
class OneMinerSupply:
    miner: CheatingMiner
    settings: GatewaySettings

    async def offers(self) -> list[WorkerOffer]:
        return [
            WorkerOffer(
                miner_hotkey=MINER.ss58_address,
                worker_id=LEASED,
                state=WorkerState.IDLE,
                cpu_cores=4,
                ram_mib=8192,
                region=self.settings.region,
                price_per_cpu_s=0.001,
                public_key=public_hex(self.miner.keys[LEASED]),  # as the miner lists it now
            )
        ]

    async def client(self, hotkey: str) -> CheatingMiner:
        assert hotkey == MINER.ss58_address
        return self.miner

    async def close(self) -> None:
        pass


@dataclass
class Gateway:
    clock: Clock
    miner: CheatingMiner
    desk: LeaseDesk
    watch: LeaseWatch
    store: Store
    tenant: Tenant

    async def rent(self) -> LeaseView:
        return await self.desk.create(self.tenant, LeaseSpec(duration_s=3600))

    async def probe(self, after_s: float) -> tuple[bool, str]:
        self.clock.now += after_s
        results = await self.watch.probe_once()
        assert len(results) == 1, results
        return results[0][1].ok, results[0][1].reason

    async def receipts(self, lease_id: str) -> list[ReceiptRecord]:
        wire_id = self.desk.anonymous_id(lease_id)
        async with self.store.session() as s:
            every = await receipts_in_window(s, 0, int(T0) + 100_000)
        return [r for r in every if r.lease_id == wire_id]

    async def shown(self, lease_id: str) -> LeaseView:
        async with self.store.session() as s:
            record = await get_lease(s, lease_id)
        return (await self.watch.with_health([view_of(record)]))[0]


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[Gateway]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'gateway.db'}"
    await upgrade(url)
    store = await open_store(url)
    clock = Clock()
    keys = {LEASED: Ed25519PrivateKey.generate(), NEIGHBOUR: Ed25519PrivateKey.generate()}
    miner = CheatingMiner(clock, keys)
    settings = GatewaySettings(home=tmp_path)
    desk = LeaseDesk(
        store, OneMinerSupply(miner, settings), settings, hotkey=GATEWAY, netuid=1,
        secret=b"0123456789abcdef0123", bill_period_s=10.0, clock=clock,
    )  # fmt: skip
    desk.liveness = watch = LeaseWatch(store, desk.pool, settings, desk, clock=clock)
    async with store.session() as s:
        record = await create_tenant(s, "renter", balance=100.0, at=int(T0))
    tenant = Tenant(
        id=record.id, name="renter", balance=100.0, max_running_jobs=10, max_queued_jobs=10
    )
    try:
        yield Gateway(clock, miner, desk, watch, store, tenant)
    finally:
        await store.close()


async def test_the_honest_workers_heartbeats_keep_the_lease_billed(gateway: Gateway) -> None:
    lease = await gateway.rent()
    for _ in range(5):
        assert await gateway.probe(20.0) == (True, "ok")
    await gateway.desk.bill_once()
    receipts = await gateway.receipts(lease.id)
    assert receipts and max(r.period_end for r in receipts) == T0 + 100
    assert (await gateway.shown(lease.id)).health != "degraded"
    assert len({h.nonce for h in gateway.miner.heartbeats}) == 5  # a fresh nonce every probe


@pytest.mark.adversarial
async def test_a_worker_that_never_existed_is_never_billed(gateway: Gateway) -> None:
    """The finding: the miner answered "alive" for a worker that was not there, and every
    answer let billing go on. Its word alone now fails the first probe, and nothing is billed."""
    gateway.miner.mode = "self"
    lease = await gateway.rent()
    assert await gateway.probe(15.0) == (False, "unsigned")
    for _ in range(50):
        gateway.clock.now += 15.0
        assert await gateway.watch.probe_once() == []  # degraded for good: never probed again
        await gateway.desk.bill_once()
    assert await gateway.receipts(lease.id) == []
    shown = await gateway.shown(lease.id)
    assert shown.health == "degraded" and (shown.degraded_reason or "").startswith("unsigned")
    assert shown.cost == 0.0 and shown.receipts == 0 and shown.replacement_offer is not None


@pytest.mark.adversarial
@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        ("self", "unsigned"),  # the miner answers alive itself, without the worker
        ("replay", "wrong_nonce"),  # an earlier probe's heartbeat, sent again
        ("other_key", "bad_worker_signature"),  # another worker signs in its name
    ],
)
async def test_billing_stops_at_the_last_heartbeat_the_worker_signed(
    gateway: Gateway, mode: str, reason: str
) -> None:
    lease = await gateway.rent()
    assert await gateway.probe(20.0) == (True, "ok")
    assert await gateway.probe(20.0) == (True, "ok")  # the worker vouched up to T0 + 40
    gateway.miner.mode = mode
    assert await gateway.probe(20.0) == (False, reason)
    for _ in range(10):
        gateway.clock.now += 30.0
        assert await gateway.watch.probe_once() == []
        await gateway.desk.bill_once()
    receipts = await gateway.receipts(lease.id)
    assert receipts and max(r.period_end for r in receipts) == T0 + 40
    shown = await gateway.shown(lease.id)
    assert shown.health == "degraded" and (shown.degraded_reason or "").startswith(reason)
    assert shown.receipts == len(receipts)


@pytest.mark.adversarial
async def test_a_key_swapped_mid_lease_fails(gateway: Gateway) -> None:
    """The miner re-lists the leased worker with a key it holds: the lease keeps the key it
    was placed on, so the new key's heartbeats fail though the listing now shows that key."""
    lease = await gateway.rent()
    assert await gateway.probe(20.0) == (True, "ok")
    gateway.miner.keys[LEASED] = Ed25519PrivateKey.generate()
    listed = (await gateway.desk.pool.offers())[0].public_key
    assert listed == public_hex(gateway.miner.keys[LEASED])
    assert await gateway.probe(20.0) == (False, "bad_worker_signature")
    await gateway.desk.bill_once()
    assert max(r.period_end for r in await gateway.receipts(lease.id)) == T0 + 20


@pytest.mark.adversarial
async def test_a_lease_stored_without_a_worker_key_is_not_vouched_for(gateway: Gateway) -> None:
    """A lease placed before keys were kept cannot be checked, so it is not taken on trust."""
    lease = await gateway.rent()
    async with gateway.store.session() as s:
        await s.execute(
            sa.text("UPDATE leases SET worker_public_key = NULL WHERE id = :id"), {"id": lease.id}
        )
    assert await gateway.probe(20.0) == (False, "no_worker_key")
