"""Refused private-network joins are kept newest first, up to a bound, on both stores."""

from __future__ import annotations

import pytest

from byteleap.store import Store
from byteleap.store import tenant_networks as tenant_networks_module
from byteleap.store.tenant_networks import network_rejections, record_network_rejection


async def test_only_the_newest_refused_joins_are_kept(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tenant_networks_module, "MAX_REJECTIONS_KEPT", 3)
    for k in range(7):
        async with store.session() as s:
            await record_network_rejection(
                s, at=1000.0 + k, reason="bad_signature", detail=f"join {k}"
            )
    async with store.session() as s:
        kept = await network_rejections(s, limit=100)
    assert [r.detail for r in kept] == ["join 6", "join 5", "join 4"]


async def test_fewer_refusals_than_the_bound_are_all_kept(store: Store) -> None:
    for k in range(2):
        async with store.session() as s:
            await record_network_rejection(s, at=1000.0 + k, reason="replayed", detail=f"{k}")
    async with store.session() as s:
        assert len(await network_rejections(s, limit=100)) == 2
