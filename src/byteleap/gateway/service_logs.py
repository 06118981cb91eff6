"""A service's logs: each recent replica's lines, read from the miner that runs (or ran) it,
which keeps a replica's log as it keeps a job's (a replica is a job on its miner, under the
replica's id). A miner that cannot answer leaves that replica with no lines, not an error."""

from __future__ import annotations

import asyncio

from byteleap.gateway.miners import Supply
from byteleap.net.miner_client import MinerCallError
from byteleap.protocol.api import LogEntry
from byteleap.protocol.service_spec import ReplicaLog, ServiceLogs
from byteleap.store import Store
from byteleap.store.services import ReplicaRecord, list_replicas

MAX_REPLICAS = 16  # the most recent ones: a long-lived service has had many


async def service_logs(
    store: Store, pool: Supply, service_id: str, *, after: int = 0, replica_id: str | None = None
) -> ServiceLogs:
    async with store.session() as s:
        records = await list_replicas(s, service_id=service_id)
    if replica_id is not None:
        records = [r for r in records if r.id == replica_id]
    newest = sorted(records, key=lambda r: r.created_at, reverse=True)[:MAX_REPLICAS]
    # All at once: a miner that is slow to answer costs its timeout once, not once per replica.
    logs = await asyncio.gather(*(_replica_log(pool, r, after) for r in newest))
    return ServiceLogs(service_id=service_id, replicas=list(logs))


async def _replica_log(pool: Supply, replica: ReplicaRecord, after: int) -> ReplicaLog:
    lines: list[LogEntry] = []
    more = False
    try:
        client = await pool.client(replica.miner_hotkey)
        page = await client.job_logs(replica.id, after=after)
        lines = [LogEntry(seq=x.seq, stream=x.stream, line=x.line, ts=x.ts) for x in page.lines]
        more = page.more
    except MinerCallError:
        pass  # the miner is gone or says nothing: no lines for this one
    return ReplicaLog(
        replica_id=replica.id, worker_id=replica.worker_id, revision=replica.revision,
        state=replica.state.value, lines=lines, more=more,
    )  # fmt: skip
