"""The miner's own SQLite file: workers, their IP history and one-time enrollment tokens.

A miner restart loads its workers back from here, so each keeps its identity.
Tokens are stored as SHA-256 hashes only; each can be used once, before it expires.
Writes are small and rare (enrollment, IP change, revocation, state changes), so
plain sqlite3 in WAL mode is enough; every write is its own transaction.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import time
from pathlib import Path

from byteleap.miner.errors import TokenRejected, UnknownWorker
from byteleap.miner.registry import WorkerEntry
from byteleap.net.enrollment import EnrollmentToken
from byteleap.net.messages import WorkerState
from byteleap.protocol.hardware import HardwareInventory

_SCHEMA = """
CREATE TABLE IF NOT EXISTS workers (
    worker_id TEXT PRIMARY KEY,
    public_key TEXT NOT NULL UNIQUE,
    hardware TEXT NOT NULL,
    profile TEXT NOT NULL,
    state TEXT NOT NULL,
    last_seen REAL NOT NULL,
    ip TEXT,
    enrolled_at REAL NOT NULL,
    revoked_at REAL
);
CREATE TABLE IF NOT EXISTS ip_history (
    worker_id TEXT NOT NULL REFERENCES workers(worker_id),
    ip TEXT NOT NULL,
    seen_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS ip_history_worker ON ip_history(worker_id, seen_at);
CREATE TABLE IF NOT EXISTS tokens (
    token_hash TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    expires_at REAL NOT NULL,
    used_at REAL,
    worker_id TEXT
);
"""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class MinerLedger:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    # -- tokens ---------------------------------------------------------------------

    def new_token(self, miner_public_key: str, ttl_s: float, now: float | None = None) -> str:
        now = time.time() if now is None else now
        secret = secrets.token_hex(32)
        self._db.execute(
            "INSERT INTO tokens(token_hash, created_at, expires_at) VALUES (?, ?, ?)",
            (_hash(secret), now, now + ttl_s),
        )
        return EnrollmentToken(secret, miner_public_key).encode()

    def enroll(self, secret: str, entry: WorkerEntry, now: float) -> None:
        """Spend the token and store the new worker, atomically."""
        with self._transaction():
            row = self._db.execute(
                "SELECT expires_at, used_at FROM tokens WHERE token_hash = ?", (_hash(secret),)
            ).fetchone()
            if row is None:
                raise TokenRejected("unknown enrollment token")
            if row[1] is not None:
                raise TokenRejected("enrollment token already used")
            if row[0] < now:
                raise TokenRejected("enrollment token expired")
            self._db.execute(
                "UPDATE tokens SET used_at = ?, worker_id = ? WHERE token_hash = ?",
                (now, entry.worker_id, _hash(secret)),
            )
            self._db.execute(
                "INSERT INTO workers(worker_id, public_key, hardware, profile, state, last_seen,"
                " ip, enrolled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    entry.worker_id,
                    entry.public_key,
                    entry.hardware.model_dump_json(),
                    entry.profile,
                    entry.state.value,
                    entry.last_seen,
                    entry.ip,
                    now,
                ),
            )

    # -- workers --------------------------------------------------------------------

    def save(self, entry: WorkerEntry) -> None:
        self._db.execute(
            "UPDATE workers SET hardware = ?, profile = ?, state = ?, last_seen = ?, ip = ?"
            " WHERE worker_id = ?",
            (
                entry.hardware.model_dump_json(),
                entry.profile,
                entry.state.value,
                entry.last_seen,
                entry.ip,
                entry.worker_id,
            ),
        )

    def record_ip(self, worker_id: str, ip: str, now: float) -> None:
        self._db.execute(
            "INSERT INTO ip_history(worker_id, ip, seen_at) VALUES (?, ?, ?)", (worker_id, ip, now)
        )

    def revoke(self, worker_id: str, now: float | None = None) -> None:
        cursor = self._db.execute(
            "UPDATE workers SET revoked_at = ?, state = ? WHERE worker_id = ?",
            (time.time() if now is None else now, WorkerState.OFFLINE.value, worker_id),
        )
        if cursor.rowcount == 0:
            raise UnknownWorker(f"no worker {worker_id}", worker_id=worker_id)

    def is_revoked(self, worker_id: str) -> bool:
        row = self._db.execute(
            "SELECT revoked_at FROM workers WHERE worker_id = ?", (worker_id,)
        ).fetchone()
        return row is None or row[0] is not None

    def load(self) -> list[WorkerEntry]:
        """Every worker, as offline: a restarted miner waits for them to reconnect."""
        entries = []
        rows = self._db.execute(
            "SELECT worker_id, public_key, hardware, profile, last_seen, ip, revoked_at"
            " FROM workers ORDER BY worker_id"
        ).fetchall()
        for worker_id, public_key, hardware, profile, last_seen, ip, revoked_at in rows:
            history = self._db.execute(
                "SELECT ip, seen_at FROM ip_history WHERE worker_id = ? ORDER BY seen_at",
                (worker_id,),
            ).fetchall()
            entries.append(
                WorkerEntry(
                    worker_id=worker_id,
                    public_key=public_key,
                    hardware=HardwareInventory.model_validate_json(hardware),
                    profile=profile,
                    state=WorkerState.OFFLINE,
                    last_seen=last_seen,
                    ip=ip,
                    ip_history=[(h[0], h[1]) for h in history],
                    revoked=revoked_at is not None,
                )
            )
        return entries

    def rows(self) -> list[dict[str, object]]:
        """The registry as the CLI shows it (state as last written by the miner)."""
        cursor = self._db.execute(
            "SELECT worker_id, state, profile, ip, last_seen, revoked_at, hardware FROM workers"
            " ORDER BY worker_id"
        )
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, *rest: object) -> None:
        self._db.execute("ROLLBACK" if exc_type is not None else "COMMIT")
