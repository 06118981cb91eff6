"""Tenants' private networks in the store: each tenant's /24 and epoch, members, refused joins.

Every membership change runs in one transaction that starts with :func:`bump_epoch`: that
write takes the network row's lock (PostgreSQL) or the database's write lock (SQLite), so
two gateways changing the same network take turns and each sees the other's members before
it allocates an address. A member's row stays after it leaves, so its public key is never
accepted again (the ``public_key`` column is unique).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from byteleap.store.errors import RecordNotFound, StoreConflict
from byteleap.store.models import TenantNetwork, TenantNetworkMember, TenantNetworkRejection

MAX_DETAIL = 500
# Refused joins kept, newest first: a misbehaving miner can send refused joins without end,
# and each would otherwise be a row forever.
MAX_REJECTIONS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    tenant_id: int
    subnet: str
    epoch: int
    created_at: float


@dataclass(frozen=True, slots=True)
class MemberRecord:
    lease_id: str
    tenant_id: int
    wire_id: str
    miner_hotkey: str
    public_key: str
    endpoint: str
    address: str
    joined_at: float
    left_at: float | None


@dataclass(frozen=True, slots=True)
class NetworkRejectionRecord:
    id: int
    at: float
    reason: str
    tenant_id: int | None
    lease_id: str | None
    caller_hotkey: str | None
    detail: str


_NETWORK_COLUMNS = [getattr(TenantNetwork, f.name) for f in fields(NetworkRecord)]
_MEMBER_COLUMNS = [getattr(TenantNetworkMember, f.name) for f in fields(MemberRecord)]
_REJECTION_COLUMNS = [
    getattr(TenantNetworkRejection, f.name) for f in fields(NetworkRejectionRecord)
]


def _insert(s: AsyncSession, table: type[TenantNetwork | TenantNetworkMember]) -> sa.Insert:
    dialect = s.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def _check_time(at: float) -> None:
    if not math.isfinite(at):
        raise ValueError(f"time must be finite, not {at!r}")


async def get_network(s: AsyncSession, tenant_id: int) -> NetworkRecord | None:
    row = (
        await s.execute(sa.select(*_NETWORK_COLUMNS).where(TenantNetwork.tenant_id == tenant_id))
    ).first()
    return None if row is None else NetworkRecord(*row)


async def taken_subnets(s: AsyncSession) -> list[str]:
    return list(await s.scalars(sa.select(TenantNetwork.subnet)))


async def create_network(s: AsyncSession, tenant_id: int, subnet: str, *, at: float) -> bool:
    """Give ``tenant_id`` the network ``subnet`` at epoch 0; False when the tenant already has
    one or the subnet is another's (read again and choose), the transaction still usable."""
    _check_time(at)
    stmt = (
        _insert(s, TenantNetwork)
        .values(tenant_id=tenant_id, subnet=subnet, epoch=0, created_at=at)
        .on_conflict_do_nothing()  # type: ignore[attr-defined]
    )
    result = await s.execute(stmt)
    return bool(result.rowcount == 1)  # type: ignore[attr-defined]


async def bump_epoch(s: AsyncSession, tenant_id: int) -> int | None:
    """The network's next epoch (written); None when the tenant has no network yet."""
    stmt = (
        sa.update(TenantNetwork)
        .where(TenantNetwork.tenant_id == tenant_id)
        .values(epoch=TenantNetwork.epoch + 1)
        .returning(TenantNetwork.epoch)
    )
    epoch = (await s.execute(stmt)).scalar_one_or_none()
    return None if epoch is None else int(epoch)


async def live_members(s: AsyncSession, tenant_id: int) -> list[MemberRecord]:
    """The network's current members, by address."""
    stmt = (
        sa.select(*_MEMBER_COLUMNS)
        .where(TenantNetworkMember.tenant_id == tenant_id, TenantNetworkMember.left_at.is_(None))
        .order_by(TenantNetworkMember.joined_at, TenantNetworkMember.lease_id)
    )
    return [MemberRecord(*row) for row in await s.execute(stmt)]


async def get_member(s: AsyncSession, lease_id: str) -> MemberRecord | None:
    """The lease's membership, current or past."""
    stmt = sa.select(*_MEMBER_COLUMNS).where(TenantNetworkMember.lease_id == lease_id)
    row = (await s.execute(stmt)).first()
    return None if row is None else MemberRecord(*row)


async def public_key_used(s: AsyncSession, public_key: str) -> bool:
    stmt = sa.select(TenantNetworkMember.lease_id).where(
        TenantNetworkMember.public_key == public_key
    )
    return (await s.scalar(stmt)) is not None


async def add_member(s: AsyncSession, member: MemberRecord) -> MemberRecord:
    """Store a new member; :class:`StoreConflict` if the lease or the key was ever a member."""
    _check_time(member.joined_at)
    if member.left_at is not None:
        raise ValueError("a new member has not left")
    values = {f.name: getattr(member, f.name) for f in fields(MemberRecord)}
    stmt = _insert(s, TenantNetworkMember).values(**values).on_conflict_do_nothing()  # type: ignore[attr-defined]
    if (await s.execute(stmt)).rowcount != 1:  # type: ignore[attr-defined]
        raise StoreConflict(
            f"lease {member.lease_id} or its key was already a member",
            entity="tenant_network_member",
            id=member.lease_id,
        )
    found = await get_member(s, member.lease_id)
    assert found is not None
    return found


async def update_endpoint(s: AsyncSession, lease_id: str, endpoint: str) -> None:
    stmt = (
        sa.update(TenantNetworkMember)
        .where(TenantNetworkMember.lease_id == lease_id, TenantNetworkMember.left_at.is_(None))
        .values(endpoint=endpoint)
    )
    if (await s.execute(stmt)).rowcount != 1:  # type: ignore[attr-defined]
        raise RecordNotFound(f"lease {lease_id} is no member", entity="member", id=lease_id)


async def mark_left(s: AsyncSession, lease_id: str, *, at: float) -> bool:
    """Take the lease out of its network; False if it was not in one (or already left)."""
    _check_time(at)
    stmt = (
        sa.update(TenantNetworkMember)
        .where(TenantNetworkMember.lease_id == lease_id, TenantNetworkMember.left_at.is_(None))
        .values(left_at=at)
    )
    return bool((await s.execute(stmt)).rowcount == 1)  # type: ignore[attr-defined]


async def record_network_rejection(
    s: AsyncSession,
    *,
    at: float,
    reason: str,
    detail: str,
    tenant_id: int | None = None,
    lease_id: str | None = None,
    caller_hotkey: str | None = None,
) -> None:
    """Keep a refused join; claimed values are cut to their column sizes, never refused."""
    _check_time(at)
    s.add(
        TenantNetworkRejection(
            at=at,
            reason=reason[:32],
            detail=detail[:MAX_DETAIL],
            tenant_id=tenant_id if tenant_id is not None and 0 <= tenant_id < 2**31 else None,
            lease_id=None if lease_id is None else lease_id[:64],
            caller_hotkey=None if caller_hotkey is None else caller_hotkey[:64],
        )
    )
    await s.flush()
    table = TenantNetworkRejection.__table__
    oldest_kept = (
        sa.select(table.c.id).order_by(table.c.id.desc()).offset(MAX_REJECTIONS_KEPT - 1).limit(1)
    ).scalar_subquery()
    await s.execute(sa.delete(table).where(table.c.id < oldest_kept))


async def network_rejections(
    s: AsyncSession, *, tenant_id: int | None = None, limit: int = 100
) -> list[NetworkRejectionRecord]:
    """Refused joins, newest first."""
    stmt = sa.select(*_REJECTION_COLUMNS)
    if tenant_id is not None:
        stmt = stmt.where(TenantNetworkRejection.tenant_id == tenant_id)
    stmt = stmt.order_by(TenantNetworkRejection.id.desc()).limit(max(1, min(limit, 10_000)))
    return [NetworkRejectionRecord(*row) for row in await s.execute(stmt)]
