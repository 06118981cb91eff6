"""The validator's store: SQLAlchemy 2 (async) models, repositories, Alembic migrations.

Owns every persistent fact the validator keeps: miners, workers and their
hardware, availability runs, IP history, challenges with timings and verdicts,
weights history, chain events and verified lease receipts. SQLite (file) by
default, PostgreSQL via ``postgresql+asyncpg://``; the same code and the same
tests run on both.

Use::

    store = await open_store(url)            # StoreUnavailable / StoreSchemaError
    async with store.session() as s:         # one transaction
        await record_challenge(s, new)

Timestamps are integer UTC epoch seconds; durations float seconds; availability
in integer 5-minute buckets. Repositories take an ``AsyncSession`` and return
frozen dataclasses or named tuples, never ORM objects. Errors: see
:mod:`byteleap.store.errors`.
"""

from byteleap.store.availability import (
    BUCKET_SECONDS,
    SpanRow,
    bucket_of,
    bulk_insert_spans,
    mark_online,
    online_buckets,
    prune_availability,
    spans_from_buckets,
    spans_in_window,
)
from byteleap.store.challenges import (
    ChallengeRecord,
    ChallengeRow,
    NewChallenge,
    WorkerChallengeSummary,
    abandon_open_challenges,
    advance_challenge,
    bulk_insert_challenges,
    challenge_rows,
    challenge_summaries,
    get_challenge,
    open_challenges,
    record_challenge,
)
from byteleap.store.engine import Store, open_store
from byteleap.store.errors import (
    IllegalTransition,
    RecordNotFound,
    StoreConflict,
    StoreError,
    StoreQueryError,
    StoreSchemaError,
    StoreUnavailable,
)
from byteleap.store.migrate import current, downgrade, head_revision, upgrade
from byteleap.store.receipts import (
    ReceiptRecord,
    get_receipt,
    prune_receipts,
    receipts_in_window,
    record_receipt,
)
from byteleap.store.registry import (
    GpuInfo,
    MinerRecord,
    WorkerHardware,
    WorkerIpRecord,
    WorkerRecord,
    bulk_insert_worker_ips,
    get_miner,
    get_worker,
    ip_history,
    list_miners,
    list_workers,
    record_worker_ip,
    set_worker_hardware,
    set_worker_state,
    set_worker_states,
    upsert_miner,
    upsert_workers,
)
from byteleap.store.states import (
    CHALLENGE_TRANSITIONS,
    WORKER_TRANSITIONS,
    ChallengeStatus,
    WorkerState,
)
from byteleap.store.weights import (
    ChainEventRecord,
    WeightSetRecord,
    chain_events,
    latest_weights,
    mark_weights_submitted,
    record_chain_event,
    record_weights,
    weights_history,
)

__all__ = [
    "BUCKET_SECONDS",
    "CHALLENGE_TRANSITIONS",
    "WORKER_TRANSITIONS",
    "ChainEventRecord",
    "ChallengeRecord",
    "ChallengeRow",
    "ChallengeStatus",
    "GpuInfo",
    "IllegalTransition",
    "MinerRecord",
    "NewChallenge",
    "ReceiptRecord",
    "RecordNotFound",
    "SpanRow",
    "Store",
    "StoreConflict",
    "StoreError",
    "StoreQueryError",
    "StoreSchemaError",
    "StoreUnavailable",
    "WeightSetRecord",
    "WorkerChallengeSummary",
    "WorkerHardware",
    "WorkerIpRecord",
    "WorkerRecord",
    "WorkerState",
    "abandon_open_challenges",
    "advance_challenge",
    "bucket_of",
    "bulk_insert_challenges",
    "bulk_insert_spans",
    "bulk_insert_worker_ips",
    "chain_events",
    "challenge_rows",
    "challenge_summaries",
    "current",
    "downgrade",
    "get_challenge",
    "get_miner",
    "get_receipt",
    "get_worker",
    "head_revision",
    "ip_history",
    "latest_weights",
    "list_miners",
    "list_workers",
    "mark_online",
    "mark_weights_submitted",
    "online_buckets",
    "open_challenges",
    "open_store",
    "prune_availability",
    "prune_receipts",
    "receipts_in_window",
    "record_chain_event",
    "record_challenge",
    "record_receipt",
    "record_weights",
    "record_worker_ip",
    "set_worker_hardware",
    "set_worker_state",
    "set_worker_states",
    "spans_from_buckets",
    "spans_in_window",
    "upgrade",
    "upsert_miner",
    "upsert_workers",
    "weights_history",
]
