"""The gateway's side of tenants' private networks: join, leave, refresh, all in the store.

A join is accepted only when the request is signed (btauth/1) by the miner that hosts the
lease, the lease is live and is the claimed tenant's, and the key was never used before.
Then the member gets the lowest free address of its tenant's /24 and every member gets a
new peer set at the network's next epoch. Every refusal is stored with its reason
(`network_rejections`) before `JoinRejected` is raised. Leaving gives the remaining members
a new epoch without the member; its row is kept so its key can never come back.

What comes back are `Delivery` objects: the lead's transport carries each one to its miner,
which hands it to the worker running the lease (`MemberLink.apply`).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from bittensor import http_auth
from bittensor.signing import WalletLike
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.net.auth import Authorize, AuthRejected, RequestVerifier
from byteleap.net.ratelimit import RateLimiter
from byteleap.net.wireguard.addressing import allocate_address, allocate_subnet, parse_pool
from byteleap.net.wireguard.errors import JoinRefusal, JoinRejected, NotAMember
from byteleap.net.wireguard.exchange import JOIN_METHOD, JOIN_PATH, sign_peer_set
from byteleap.net.wireguard.messages import (
    MAX_JOIN_BYTES,
    JoinRequest,
    NetworkSettings,
    PeerSet,
    SignedPeerSet,
)
from byteleap.net.wireguard.peersets import Member, peer_set_for, peer_sets
from byteleap.protocol.api import LeaseState
from byteleap.store import RecordNotFound, Store
from byteleap.store.leases import LeaseRecord, get_lease, list_leases
from byteleap.store.tenant_networks import (
    MemberRecord,
    NetworkRecord,
    NetworkRejectionRecord,
    add_member,
    bump_epoch,
    create_network,
    get_member,
    get_network,
    live_members,
    mark_left,
    network_rejections,
    public_key_used,
    record_network_rejection,
    taken_subnets,
    update_endpoint,
)

log = logging.getLogger(__name__)

# Enough to skip every subnet another gateway takes while we choose.
_SUBNET_TRIES = 20
# Wire ids are keyed hashes: finding one means hashing the live leases' ids (µs each).
_LEASE_SCAN_LIMIT = 100_000


@dataclass(frozen=True, slots=True)
class Delivery:
    """A signed peer set and where it goes: the member's miner and its lease (wire id)."""

    miner_hotkey: str
    lease_id: str
    message: SignedPeerSet


@dataclass(frozen=True, slots=True)
class JoinOutcome:
    own: Delivery  # for the member that joined
    updates: list[Delivery]  # for every other member


# byteleap.net.auth reasons -> ours (the same words; an unknown one is a forgery).
_AUTH_REFUSALS = {
    r.value: r
    for r in (
        JoinRefusal.MALFORMED_AUTH,
        JoinRefusal.BAD_SIGNATURE,
        JoinRefusal.WRONG_RECEIVER,
        JoinRefusal.STALE,
        JoinRefusal.REPLAYED,
        JoinRefusal.NOT_PERMITTED,
        JoinRefusal.RATE_LIMITED,
    )
}


async def _allow_any(_hotkey: str) -> bool:
    return True


def _members(rows: list[MemberRecord]) -> list[Member]:
    return [Member(m.wire_id, m.miner_hotkey, m.public_key, m.endpoint, m.address) for m in rows]


@dataclass
class TenantNetworks:
    store: Store
    #: The gateway's hotkey (a Wallet or a Keypair): signs peer sets, receives join requests.
    gateway: WalletLike
    gateway_hotkey: str
    settings: NetworkSettings = field(default_factory=NetworkSettings)
    #: lease id -> the id its miner knows (LeaseDesk.anonymous_id); None: the same id.
    wire_id: Callable[[str], str] | None = None
    #: Which signers may call at all (e.g. registered miners); the lease check comes after.
    authorize: Authorize = _allow_any
    limiter: RateLimiter = field(default_factory=lambda: RateLimiter(rate_per_s=10.0, burst=50.0))
    clock: Callable[[], float] = time.time
    _verifier: RequestVerifier = field(init=False)

    def __post_init__(self) -> None:
        self._pool = parse_pool(self.settings.pool)
        self._verifier = RequestVerifier(
            self_hotkey=self.gateway_hotkey,
            authorize=self.authorize,
            limiter=self.limiter,
            nonce_store=http_auth.InMemoryNonceStore(retention=http_auth.DEFAULT_MAX_AGE + 10),
        )

    # ---- join ---------------------------------------------------------------------

    async def join(self, headers: Mapping[str, str], body: bytes) -> JoinOutcome:
        """Admit the member a signed join request names, or record why not and raise
        `JoinRejected`."""
        caller: str | None = None
        request: JoinRequest | None = None
        try:
            if len(body) > MAX_JOIN_BYTES:
                raise JoinRejected("join request too large", refusal=JoinRefusal.MALFORMED)
            caller = await self._authenticate(headers, body)
            request = self._parse(body)
            lease = await self._live_lease(request, caller)
            return await self._admit(request, lease)
        except JoinRejected as exc:
            await self._record(exc, caller, request)
            raise

    async def _authenticate(self, headers: Mapping[str, str], body: bytes) -> str:
        try:
            return await self._verifier.verify(headers, body, method=JOIN_METHOD, path=JOIN_PATH)
        except AuthRejected as exc:
            raise JoinRejected(
                f"join request not authenticated: {exc}",
                refusal=_AUTH_REFUSALS.get(exc.reason, JoinRefusal.BAD_SIGNATURE),
            ) from None

    @staticmethod
    def _parse(body: bytes) -> JoinRequest:
        try:
            return JoinRequest.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise JoinRejected(
                f"bad join request: {where}: {first['msg']}", refusal=JoinRefusal.MALFORMED
            ) from None

    async def _find_lease(self, wire_id: str) -> LeaseRecord | None:
        async with self.store.session() as s:
            if self.wire_id is None:
                try:
                    return await get_lease(s, wire_id)
                except RecordNotFound:
                    return None
            live = await list_leases(s, states=[LeaseState.ACTIVE], limit=_LEASE_SCAN_LIMIT)
        return next((x for x in live if self.wire_id(x.id) == wire_id), None)

    async def _live_lease(self, request: JoinRequest, caller: str) -> LeaseRecord:
        lease = await self._find_lease(request.lease_id)
        if lease is None:
            raise JoinRejected(
                f"no live lease {request.lease_id}", refusal=JoinRefusal.UNKNOWN_LEASE
            )
        if lease.tenant_id != request.tenant_id:
            # Said without naming the lease's real tenant.
            raise JoinRejected(
                f"lease {request.lease_id} is not tenant {request.tenant_id}'s",
                refusal=JoinRefusal.WRONG_TENANT,
            )
        if lease.miner_hotkey != caller:
            raise JoinRejected(
                f"lease {request.lease_id} is not hosted by {caller}",
                refusal=JoinRefusal.WRONG_MINER,
            )
        if lease.state != LeaseState.ACTIVE or lease.ends_at <= self.clock():
            raise JoinRejected(
                f"lease {request.lease_id} has ended", refusal=JoinRefusal.LEASE_NOT_LIVE
            )
        return lease

    async def _admit(self, request: JoinRequest, lease: LeaseRecord) -> JoinOutcome:
        now = self.clock()
        async with self.store.session() as s:
            # The epoch bump comes first: it serialises membership changes of this network.
            epoch = await bump_epoch(s, lease.tenant_id)
            if epoch is None:
                await self._create_network(s, lease.tenant_id, now)
                epoch = await bump_epoch(s, lease.tenant_id)
            assert epoch is not None
            network = await get_network(s, lease.tenant_id)
            assert network is not None
            await self._place_member(s, request, lease, network, now)
            members = _members(await live_members(s, lease.tenant_id))
        sets = peer_sets(
            members,
            tenant_id=lease.tenant_id,
            subnet=network.subnet,
            epoch=epoch,
            issued_at=now,
            validity_s=self.settings.validity_s,
            new_nonce=lambda: secrets.token_hex(16),
        )
        deliveries = {m.wire_id: self._deliver(m, ps) for m, ps in sets}
        own = deliveries.pop(request.lease_id)
        log.info("member joined", extra={"lease": lease.id, "tenant": lease.tenant_id})
        return JoinOutcome(own=own, updates=list(deliveries.values()))

    async def _create_network(self, s: AsyncSession, tenant_id: int, now: float) -> None:
        for _ in range(_SUBNET_TRIES):
            taken = [ipaddress.IPv4Network(x) for x in await taken_subnets(s)]
            subnet = allocate_subnet(self._pool, taken)
            if await create_network(s, tenant_id, str(subnet), at=now):
                return
            if await get_network(s, tenant_id) is not None:
                return
        raise JoinRejected("could not claim a subnet", refusal=JoinRefusal.NETWORK_FULL)

    async def _place_member(
        self,
        s: AsyncSession,
        request: JoinRequest,
        lease: LeaseRecord,
        network: NetworkRecord,
        now: float,
    ) -> None:
        existing = await get_member(s, lease.id)
        if existing is not None:
            if existing.left_at is not None:
                raise JoinRejected(
                    f"lease {request.lease_id} left its network; a lease joins once",
                    refusal=JoinRefusal.LEASE_NOT_LIVE,
                )
            if existing.public_key != request.public_key:
                raise JoinRejected(
                    "a member keeps its key for the whole lease", refusal=JoinRefusal.KEY_CHANGED
                )
            if existing.endpoint != request.endpoint:
                await update_endpoint(s, lease.id, request.endpoint)
            return
        if await public_key_used(s, request.public_key):
            raise JoinRejected("this public key was used before", refusal=JoinRefusal.KEY_REUSED)
        current = await live_members(s, lease.tenant_id)
        if len(current) >= self.settings.max_members:
            raise JoinRejected(
                f"the network has {len(current)} members already", refusal=JoinRefusal.NETWORK_FULL
            )
        address = allocate_address(
            ipaddress.IPv4Network(network.subnet),
            [ipaddress.IPv4Address(m.address) for m in current],
        )
        await add_member(
            s,
            MemberRecord(
                lease_id=lease.id,
                tenant_id=lease.tenant_id,
                wire_id=request.lease_id,
                miner_hotkey=lease.miner_hotkey,
                public_key=request.public_key,
                endpoint=request.endpoint,
                address=str(address),
                joined_at=now,
                left_at=None,
            ),
        )

    async def _record(
        self, exc: JoinRejected, caller: str | None, request: JoinRequest | None
    ) -> None:
        log.warning("join refused", extra={"why": exc.reason, "caller": caller, "detail": str(exc)})
        async with self.store.session() as s:
            await record_network_rejection(
                s,
                at=self.clock(),
                reason=exc.reason,
                detail=str(exc),
                tenant_id=None if request is None else request.tenant_id,
                lease_id=None if request is None else request.lease_id,
                caller_hotkey=caller,
            )

    # ---- leave, refresh -----------------------------------------------------------

    async def leave(self, lease_id: str) -> list[Delivery]:
        """Take a lease out of its network (idempotent); new peer sets for those who stay."""
        async with self.store.session() as s:
            member = await get_member(s, lease_id)
        if member is None or member.left_at is not None:
            return []
        now = self.clock()
        async with self.store.session() as s:
            epoch = await bump_epoch(s, member.tenant_id)
            assert epoch is not None
            left = await mark_left(s, lease_id, at=now)
            network = await get_network(s, member.tenant_id)
            assert network is not None
            members = _members(await live_members(s, member.tenant_id))
        if not left:
            return []
        log.info("member left", extra={"lease": lease_id, "tenant": member.tenant_id})
        sets = peer_sets(
            members,
            tenant_id=member.tenant_id,
            subnet=network.subnet,
            epoch=epoch,
            issued_at=now,
            validity_s=self.settings.validity_s,
            new_nonce=lambda: secrets.token_hex(16),
        )
        return [self._deliver(m, ps) for m, ps in sets]

    async def peers(self, lease_id: str) -> Delivery:
        """A fresh peer set (next epoch) for a current member; `NotAMember` otherwise."""
        async with self.store.session() as s:
            found = await get_member(s, lease_id)
        if found is None or found.left_at is not None:
            raise NotAMember(f"lease {lease_id} is not in a network", lease=lease_id)
        now = self.clock()
        async with self.store.session() as s:
            epoch = await bump_epoch(s, found.tenant_id)
            network = await get_network(s, found.tenant_id)
            rows = await live_members(s, found.tenant_id)
        assert epoch is not None and network is not None
        me = next((m for m in _members(rows) if m.wire_id == found.wire_id), None)
        if me is None:  # it left in between
            raise NotAMember(f"lease {lease_id} is not in a network", lease=lease_id)
        peer_set = peer_set_for(
            me,
            _members(rows),
            tenant_id=found.tenant_id,
            subnet=network.subnet,
            epoch=epoch,
            nonce=secrets.token_hex(16),
            issued_at=now,
            validity_s=self.settings.validity_s,
        )
        return self._deliver(me, peer_set)

    async def members(self, tenant_id: int) -> list[MemberRecord]:
        async with self.store.session() as s:
            return await live_members(s, tenant_id)

    async def rejections(
        self, *, tenant_id: int | None = None, limit: int = 100
    ) -> list[NetworkRejectionRecord]:
        async with self.store.session() as s:
            return await network_rejections(s, tenant_id=tenant_id, limit=limit)

    def _deliver(self, member: Member, peer_set: PeerSet) -> Delivery:
        signed = sign_peer_set(self.gateway, peer_set, miner_hotkey=member.miner_hotkey)
        return Delivery(miner_hotkey=member.miner_hotkey, lease_id=member.wire_id, message=signed)
