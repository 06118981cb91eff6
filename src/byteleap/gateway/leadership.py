"""Which gateway replica runs the background passes (dispatch, monitoring, billing, lease
probes, output validation, services): the holder of the store's ``gateway-passes`` role.

Any number of replicas serve the API over one PostgreSQL store; one of them runs the passes
and renews its claim as it goes, and when it dies another takes over once the claim lapses
(``ttl_s``, seconds). A replica stops running passes a quarter of the ttl before its claim
could lapse, so two never run them at once on synchronised clocks; the writes that must
never happen twice are also fenced by the items themselves (store.leadership).

SQLite is the single-process embedded store: a second gateway on one SQLite file is refused
at start (:func:`lock_sqlite_store`).
"""

from __future__ import annotations

import fcntl
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from byteleap.errors import ByteleapError
from byteleap.store import Store, StoreError
from byteleap.store.leadership import claim, resign

log = logging.getLogger(__name__)

PASSES = "gateway-passes"


class StoreInUse(ByteleapError):
    reason = "store_in_use"


def replica_name() -> str:
    """This process's name among replicas: host, pid and a random part (pids repeat)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


@dataclass
class Leadership:
    store: Store
    holder: str = field(default_factory=replica_name)
    ttl_s: float = 10.0
    clock: Callable[[], float] = time.time
    term: int | None = None
    _until: float = 0.0  # when this replica stops counting itself the holder

    @property
    def held(self) -> bool:
        return self.clock() < self._until

    async def renew(self) -> bool:
        """Claim or renew the role when half its ttl is used up; whether it is held now."""
        now = self.clock()
        if self._until - now > self.ttl_s / 4:
            return True
        try:
            async with self.store.session() as s:
                term = await claim(s, PASSES, self.holder, now=now, ttl_s=self.ttl_s)
        except StoreError as exc:  # no store, no claim: another replica may hold it by now
            log.warning("leadership not renewed", extra={"why": str(exc)})
            term = None
        if term is None:
            if self.term is not None:
                log.warning("gateway passes left to another replica", extra={"term": self.term})
            self.term, self._until = None, 0.0
            return False
        if term != self.term:
            log.info("running the gateway passes", extra={"term": term, "holder": self.holder})
        self.term = term
        self._until = now + self.ttl_s * 3 / 4
        return True

    async def resign(self) -> None:
        if self.term is None:
            return
        self.term, self._until = None, 0.0
        try:
            async with self.store.session() as s:
                await resign(s, PASSES, self.holder)
        except StoreError:
            pass  # the claim lapses by itself


def lock_sqlite_store(store: Store) -> IO[bytes] | None:
    """Hold an exclusive lock beside a SQLite store's file for this process's life (the
    returned handle); StoreInUse when another gateway holds it. None for other stores."""
    if store.dialect != "sqlite" or store.url.database in (None, "", ":memory:"):
        return None
    path = Path(str(store.url.database)).with_suffix(".gateway.lock")
    handle = path.open("ab")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise StoreInUse(
            f"another gateway runs on the SQLite store {store.url.database}: SQLite is the "
            "single-process store; run replicas over PostgreSQL (store.url = "
            "postgresql+asyncpg://…)"
        ) from None
    return handle


__all__ = ["PASSES", "Leadership", "StoreInUse", "lock_sqlite_store", "replica_name"]
