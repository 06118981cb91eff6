"""A service's logs are read from every replica's miner at once, in the replicas' order, and a
miner that cannot answer leaves its replica with no lines."""

from __future__ import annotations

import asyncio
from typing import Any

from byteleap.gateway.service_logs import service_logs
from byteleap.net.miner_client import MinerCallError
from byteleap.protocol.service_spec import ReplicaState, ServiceState
from byteleap.store import Store, create_tenant
from byteleap.store.services import ReplicaRecord, ServiceRecord, insert_replica, insert_service

T0 = 1_700_000_000.0


class _Page:
    def __init__(self, replica_id: str) -> None:
        self.lines = [
            type("Line", (), {"seq": 1, "stream": "stdout", "line": replica_id, "ts": T0})()
        ]
        self.more = False


class _Miners:
    """Each miner answers after a pause; counts the reads open at once. ``broken`` fails."""

    def __init__(self, broken: str) -> None:
        self.broken = broken
        self.open_now = 0
        self.most = 0

    async def client(self, hotkey: str) -> Any:
        return _Client(self, hotkey)


class _Client:
    def __init__(self, miners: _Miners, hotkey: str) -> None:
        self.miners, self.hotkey = miners, hotkey

    async def job_logs(self, job_id: str, *, after: int = 0) -> _Page:
        self.miners.open_now += 1
        self.miners.most = max(self.miners.most, self.miners.open_now)
        try:
            await asyncio.sleep(0.05)
            if self.hotkey == self.miners.broken:
                raise MinerCallError("gone", reason="unreachable")
            return _Page(job_id)
        finally:
            self.miners.open_now -= 1


async def test_every_replica_is_read_at_once_and_a_failing_miner_costs_only_its_lines(
    sqlite_store: Store,
) -> None:
    async with sqlite_store.session() as s:
        tenant = await create_tenant(s, "acme", balance=1.0, at=int(T0))
        await insert_service(
            s, ServiceRecord("svc_1", tenant.id, "svc", ServiceState.ACTIVE, "{}", 1, 4, T0, T0)
        )
        for k in range(4):
            await insert_replica(s, ReplicaRecord(
                f"rep_{k}", "svc_1", 1, ReplicaState.RUNNING, f"w-{k}", f"miner-{k}", None,
                "cpu", 1, 0.001, 1000, T0 + k, None, T0 + k, 0.0, 0, None,
            ))  # fmt: skip
    miners = _Miners(broken="miner-2")
    logs = await service_logs(sqlite_store, miners, "svc_1")  # type: ignore[arg-type]
    assert miners.most == 4
    assert [r.replica_id for r in logs.replicas] == ["rep_3", "rep_2", "rep_1", "rep_0"]
    assert [[line.line for line in r.lines] for r in logs.replicas] == [
        ["rep_3"],
        [],
        ["rep_1"],
        ["rep_0"],
    ]
