"""The devnet chain's ledger: one SQLite file (WAL) holding the whole subnet.

Blocks are not produced by a loop: the block number is derived from wall-clock time
since an anchor stored in the file, so a restarted service continues the same chain.
The tempo epoch runs lazily at the start of every transaction, once per tempo
boundary (the last boundary it ran is stored), so a restart neither repeats nor
misses the epoch that is due. Boundaries missed while the service was down collapse
into one epoch: an epoch depends only on current stake and weights (see
:mod:`byteleap.chain.local.yuma`), so running it again would change nothing.

Every write runs in one ``BEGIN IMMEDIATE`` transaction under a lock; a rejected
write raises before anything is committed.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict

from byteleap.chain.local import yuma
from byteleap.chain.local.messages import ChainInfo
from byteleap.chain.port import ChainError, ChainRejected, Metagraph, NeuronInfo

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS neurons (
    uid INTEGER PRIMARY KEY,
    hotkey TEXT NOT NULL UNIQUE,
    coldkey TEXT NOT NULL,
    registered_at INTEGER NOT NULL,
    axon_ip TEXT, axon_port INTEGER, certificate TEXT,
    incentive REAL NOT NULL DEFAULT 0,
    dividends REAL NOT NULL DEFAULT 0,
    weights_set_at INTEGER,
    weights_version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS stakes (hotkey TEXT PRIMARY KEY, amount REAL NOT NULL);
CREATE TABLE IF NOT EXISTS weights (
    src INTEGER NOT NULL, dst INTEGER NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (src, dst)
);
CREATE TABLE IF NOT EXISTS epochs (block INTEGER PRIMARY KEY, neurons INTEGER NOT NULL);
"""


class ChainParams(BaseModel):
    """The (param)s of one devnet subnet, taken from ChainServiceSettings."""

    model_config = ConfigDict(frozen=True)

    netuid: int = 1
    block_time_s: float = 12.0
    tempo: int = 360
    max_uids: int = 256
    immunity_period: int = 4096
    max_validators: int = 64
    weights_rate_limit: int = 100
    kappa: float = 0.5


def connect(path: Path) -> sqlite3.Connection:
    """An autocommit connection in WAL mode; transactions are explicit."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    return con


class Ledger:
    """The subnet state behind `byteleap chain serve`. Thread-safe."""

    def __init__(
        self,
        con: sqlite3.Connection,
        params: ChainParams,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._con = con
        self.params = params
        self._clock = clock
        self._lock = threading.Lock()
        con.executescript(SCHEMA)
        with self._tx():
            self._open_chain()

    # -- clock and transactions ------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                yield self._con
            except BaseException:
                self._con.execute("ROLLBACK")
                raise
            self._con.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, **values: object) -> None:
        self._con.executemany(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [(k, str(v)) for k, v in values.items()],
        )

    def _open_chain(self) -> None:
        now = self._clock()
        if self._meta("chain_id") is None:
            self._set_meta(
                chain_id=f"byteleap-local:{secrets.token_hex(8)}",
                netuid=self.params.netuid,
                anchor_unix=now,
                anchor_block=0,
                block_time_s=self.params.block_time_s,
                last_epoch_block=0,
            )
            return
        stored_netuid = int(self._meta("netuid") or -1)
        if stored_netuid != self.params.netuid:
            raise ChainError(
                f"this chain database holds netuid {stored_netuid}, not {self.params.netuid}",
                reason="netuid_mismatch",
            )
        if float(self._meta("block_time_s") or 0) != self.params.block_time_s:
            # Re-anchor so the block number stays continuous under the new block time.
            self._set_meta(
                anchor_unix=now, anchor_block=self._block(), block_time_s=self.params.block_time_s
            )

    def _block(self) -> int:
        anchor_unix = float(self._meta("anchor_unix") or 0)
        anchor_block = int(self._meta("anchor_block") or 0)
        block_time = float(self._meta("block_time_s") or self.params.block_time_s)
        return anchor_block + max(0, int((self._clock() - anchor_unix) // block_time))

    @contextmanager
    def _at_block(self) -> Iterator[int]:
        """A transaction at the current block, with any due epoch already run."""
        with self._tx():
            block = self._block()
            self._settle(block)
            yield block

    # -- reads -------------------------------------------------------------------

    @property
    def chain_id(self) -> str:
        return str(self._meta("chain_id"))

    def info(self) -> ChainInfo:
        with self._at_block() as block:
            p = self.params
            return ChainInfo(
                chain_id=self.chain_id,
                netuid=p.netuid,
                block=block,
                block_time_s=p.block_time_s,
                tempo=p.tempo,
                last_epoch_block=int(self._meta("last_epoch_block") or 0),
                max_uids=p.max_uids,
                immunity_period=p.immunity_period,
                max_validators=p.max_validators,
                weights_rate_limit=p.weights_rate_limit,
                kappa=p.kappa,
            )

    def metagraph(self) -> Metagraph:
        with self._at_block() as block:
            permits = self._permits()
            rows = self._con.execute(
                "SELECT n.uid, n.hotkey, n.coldkey, COALESCE(s.amount, 0), n.axon_ip, "
                "n.axon_port, n.certificate, n.incentive, n.dividends, "
                "COALESCE(n.weights_set_at, n.registered_at), n.registered_at "
                "FROM neurons n LEFT JOIN stakes s ON s.hotkey = n.hotkey ORDER BY n.uid"
            ).fetchall()
        neurons = [
            NeuronInfo(
                uid=r[0],
                hotkey=r[1],
                coldkey=r[2],
                stake=r[3],
                validator_permit=r[0] in permits,
                axon_ip=r[4],
                axon_port=r[5],
                certificate=r[6],
                incentive=r[7],
                dividends=r[8],
                last_update=r[9],
                registered_at=r[10],
            )
            for r in rows
        ]
        return Metagraph(netuid=self.params.netuid, block=block, neurons=neurons)

    def weights_of(self, uid: int) -> dict[int, float]:
        rows = self._con.execute("SELECT dst, value FROM weights WHERE src = ?", (uid,))
        return {int(dst): float(value) for dst, value in rows}

    def epoch_blocks(self) -> list[int]:
        return [int(r[0]) for r in self._con.execute("SELECT block FROM epochs ORDER BY block")]

    def _permits(self) -> set[int]:
        rows = self._con.execute(
            "SELECT n.uid FROM neurons n JOIN stakes s ON s.hotkey = n.hotkey "
            "WHERE s.amount > 0 ORDER BY s.amount DESC, n.uid ASC LIMIT ?",
            (self.params.max_validators,),
        )
        return {int(r[0]) for r in rows}

    def _uid_of(self, hotkey: str) -> int:
        row = self._con.execute("SELECT uid FROM neurons WHERE hotkey = ?", (hotkey,)).fetchone()
        if row is None:
            raise ChainRejected(
                f"hotkey {hotkey} is not registered on netuid {self.params.netuid}",
                reason="not_registered",
            )
        return int(row[0])

    # -- epoch -------------------------------------------------------------------

    def _settle(self, block: int) -> None:
        boundary = block - block % self.params.tempo
        if boundary <= int(self._meta("last_epoch_block") or 0):
            return
        count = self._run_epoch()
        self._set_meta(last_epoch_block=boundary)
        self._con.execute("INSERT INTO epochs (block, neurons) VALUES (?, ?)", (boundary, count))
        log.info("epoch at block %d over %d neurons", boundary, count)

    def _run_epoch(self) -> int:
        n = int(self._con.execute("SELECT COUNT(*) FROM neurons").fetchone()[0])
        if n == 0:
            return 0
        weights = np.zeros((n, n))
        for src, dst, value in self._con.execute("SELECT src, dst, value FROM weights"):
            weights[src, dst] = value
        stake = np.zeros(n)
        for uid, amount in self._con.execute(
            "SELECT n.uid, s.amount FROM neurons n JOIN stakes s ON s.hotkey = n.hotkey"
        ):
            stake[uid] = amount
        permit = np.zeros(n, dtype=bool)
        permit[list(self._permits())] = True
        result = yuma.epoch(weights, stake, permit, self.params.kappa)
        self._con.executemany(
            "UPDATE neurons SET incentive = ?, dividends = ? WHERE uid = ?",
            [(float(result.incentive[u]), float(result.dividends[u]), u) for u in range(n)],
        )
        return n

    # -- writes --------------------------------------------------------------------

    def register(self, hotkey: str, coldkey: str) -> int:
        """The hotkey's uid: its existing one, a fresh one, or a pruned one when full."""
        with self._at_block() as block:
            row = self._con.execute(
                "SELECT uid, coldkey FROM neurons WHERE hotkey = ?", (hotkey,)
            ).fetchone()
            if row is not None:
                if row[1] != coldkey:
                    raise ChainRejected(
                        f"hotkey {hotkey} is registered under another coldkey",
                        reason="coldkey_mismatch",
                    )
                return int(row[0])
            count = int(self._con.execute("SELECT COUNT(*) FROM neurons").fetchone()[0])
            uid = count if count < self.params.max_uids else self._prune(block)
            self._con.execute(
                "INSERT INTO neurons (uid, hotkey, coldkey, registered_at) VALUES (?, ?, ?, ?)",
                (uid, hotkey, coldkey, block),
            )
            log.info("registered %s as uid %d at block %d", hotkey, uid, block)
            return uid

    def _prune(self, block: int) -> int:
        """Free the uid of the lowest-incentive neuron past its immunity period."""
        row = self._con.execute(
            "SELECT uid, hotkey FROM neurons WHERE ? - registered_at >= ? "
            "ORDER BY incentive ASC, dividends ASC, registered_at ASC, uid ASC LIMIT 1",
            (block, self.params.immunity_period),
        ).fetchone()
        if row is None:
            raise ChainRejected(
                f"subnet is full ({self.params.max_uids} uids) and every neuron is still "
                f"within its immunity period of {self.params.immunity_period} blocks",
                reason="subnet_full",
            )
        uid = int(row[0])
        self._con.execute("DELETE FROM neurons WHERE uid = ?", (uid,))
        # Weights by or for the old occupant must not carry over to the newcomer.
        self._con.execute("DELETE FROM weights WHERE src = ? OR dst = ?", (uid, uid))
        log.info("pruned uid %d (%s) at block %d", uid, row[1], block)
        return uid

    def add_stake(self, hotkey: str, amount: float) -> float:
        """Devnet faucet: add stake to a registered hotkey; returns its total."""
        with self._at_block():
            self._uid_of(hotkey)
            self._con.execute(
                "INSERT INTO stakes (hotkey, amount) VALUES (?, ?) "
                "ON CONFLICT (hotkey) DO UPDATE SET amount = amount + excluded.amount",
                (hotkey, amount),
            )
            row = self._con.execute("SELECT amount FROM stakes WHERE hotkey = ?", (hotkey,))
            return float(row.fetchone()[0])

    def serve_axon(self, hotkey: str, ip: str, port: int, certificate: str | None) -> None:
        with self._at_block():
            uid = self._uid_of(hotkey)
            self._con.execute(
                "UPDATE neurons SET axon_ip = ?, axon_port = ?, certificate = ? WHERE uid = ?",
                (ip, port, certificate, uid),
            )

    def set_weights(
        self, hotkey: str, uids: list[int], weights: list[float], version_key: int
    ) -> None:
        """Replace the hotkey's weight row (normalised to sum 1)."""
        with self._at_block() as block:
            uid = self._uid_of(hotkey)
            self._check_may_set_weights(uid, block)
            count = int(self._con.execute("SELECT COUNT(*) FROM neurons").fetchone()[0])
            unknown = sorted(u for u in uids if u >= count)
            if unknown:
                raise ChainRejected(f"unknown uids: {unknown}", reason="unknown_uid")
            total = sum(weights)
            self._con.execute("DELETE FROM weights WHERE src = ?", (uid,))
            self._con.executemany(
                "INSERT INTO weights (src, dst, value) VALUES (?, ?, ?)",
                [(uid, dst, w / total) for dst, w in zip(uids, weights, strict=True) if w > 0],
            )
            self._con.execute(
                "UPDATE neurons SET weights_set_at = ?, weights_version = ? WHERE uid = ?",
                (block, version_key, uid),
            )

    def _check_may_set_weights(self, uid: int, block: int) -> None:
        if uid not in self._permits():
            raise ChainRejected(
                f"uid {uid} has no validator permit (top {self.params.max_validators} by stake)",
                reason="no_validator_permit",
            )
        row = self._con.execute("SELECT weights_set_at FROM neurons WHERE uid = ?", (uid,))
        last = row.fetchone()[0]
        if last is not None and block - int(last) < self.params.weights_rate_limit:
            wait = self.params.weights_rate_limit - (block - int(last))
            raise ChainRejected(
                f"weights were set at block {last}; next allowed in {wait} blocks",
                reason="rate_limited",
                retry_after_blocks=wait,
            )

    def close(self) -> None:
        with self._lock:
            self._con.close()
