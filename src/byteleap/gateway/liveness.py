"""Lease liveness: probe every active lease, stop billing the moment one stops answering.

Every ``lease_probe_interval_s`` the gateway asks each active lease's miner to ask the
leased worker whether the lease's workload is alive (``GET /v1/leases/{id}/alive``,
answered within ``lease_probe_timeout_s``), and, where an access endpoint exists (an
``access`` probe, see :class:`AccessProbe`), that too. All leases are probed at once, so
one hung worker delays nobody else's probe.

The miner's word is not enough: every probe carries a fresh 256-bit nonce, which the miner
forwards to the leased worker, and a probe passes only on the worker's own heartbeat
(``net.heartbeat``): signed by the worker key the lease was placed on (kept in the lease
record, so a key swapped in the miner's listing mid-lease fails), for this lease, worker and
nonce, fresh. A missing, unsigned, foreign-key, replayed or stale heartbeat fails the probe
(``unsigned``, ``bad_worker_signature``, ``wrong_nonce``, ``stale``, …) like a hang does.

A probe that passes moves the lease's ``last_ok_at`` to the time it was *sent*; billing
(`LeaseDesk`) never goes past ``last_ok_at``, so a receipt can only cover time a later
answer vouched for. The first probe that fails (a hang, a closed link, an ended lease, an
unreachable miner) is recorded with its reason and degrades the lease for good: billing
stops where the last good probe was, the tenant sees ``health: degraded`` with the reason
and a ``replacement_offer`` (the same resources for the time that was left). A lease its
miner reports ended can never come back: it also ends ``failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from byteleap.config import GatewaySettings
from byteleap.gateway.leasing import LeaseDesk
from byteleap.gateway.miners import Supply
from byteleap.net.heartbeat import check_heartbeat, new_nonce
from byteleap.net.messages import LeaseLiveness
from byteleap.net.miner_client import MinerCallError
from byteleap.protocol.api import LeaseSpec, LeaseState, LeaseView
from byteleap.store import IllegalTransition, Store
from byteleap.store.leases import LeaseRecord, list_leases
from byteleap.store.validations import lease_health, record_probe_failure, record_probe_ok

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    target: str  # workload | access
    reason: str  # ok, or why it failed
    detail: str = ""


#: An extra probe of a lease's access endpoint (the exec/SSH entry), when one exists:
#: None when the lease has no such endpoint.
AccessProbe = Callable[[LeaseRecord, float], Awaitable[ProbeResult | None]]


#: Clocks of gateway and worker differ a little: a heartbeat may be this much ahead, or
#: this much older than the probe's own wait.
CLOCK_SKEW_S = 5.0


class LivenessClient(Protocol):
    async def lease_alive(
        self, lease_id: str, *, timeout_s: float, nonce: str | None = None
    ) -> LeaseLiveness: ...


def replacement_for(view: LeaseView, now: float) -> LeaseSpec:
    """The same resources and price cap for the time the lease had left (at least 10 s)."""
    return LeaseSpec(
        resources=view.spec.resources,
        duration_s=min(max(10.0, view.ends_at - now), 7 * 24 * 3600.0),
        max_price_per_s=view.spec.max_price_per_s,
    )


@dataclass
class LeaseWatch:
    store: Store
    pool: Supply
    settings: GatewaySettings
    desk: LeaseDesk
    access_probe: AccessProbe | None = None
    clock: Callable[[], float] = time.time

    # -- what billing and the tenant see ----------------------------------------------------

    async def billable_until(self, lease: LeaseRecord) -> float:
        """The latest time a receipt of this lease may reach: its last passing probe (its
        start, which the miner's reservation vouched for, until the first probe)."""
        async with self.store.session() as s:
            health = (await lease_health(s, [lease.id])).get(lease.id)
        return lease.created_at if health is None else health.last_ok_at

    async def with_health(self, views: Sequence[LeaseView]) -> list[LeaseView]:
        async with self.store.session() as s:
            health = await lease_health(s, [v.id for v in views])
        now = self.clock()
        shown = []
        for view in views:
            h = health.get(view.id)
            if h is None or not h.degraded:
                shown.append(view)
                continue
            offer = view.state in (LeaseState.ACTIVE, LeaseState.FAILED)
            shown.append(
                view.model_copy(
                    update={
                        "health": "degraded",
                        "degraded_reason": f"{h.reason}: {h.detail}" if h.detail else h.reason,
                        "degraded_at": h.degraded_at,
                        "replacement_offer": replacement_for(view, now) if offer else None,
                    }
                )
            )
        return shown

    # -- probing ----------------------------------------------------------------------------

    async def probe_once(self) -> list[tuple[str, ProbeResult]]:
        """Probe every active, healthy lease at once; (lease id, result) for each."""
        async with self.store.session() as s:
            active = await list_leases(s, states=[LeaseState.ACTIVE], limit=10_000)
            health = await lease_health(s, [x.id for x in active])
        due = [x for x in active if not (x.id in health and health[x.id].degraded)]
        sent = self.clock()
        results = await asyncio.gather(*(self._probe(lease) for lease in due))
        for lease, result in zip(due, results, strict=True):
            await self._record(lease, result, sent)
        return [(lease.id, result) for lease, result in zip(due, results, strict=True)]

    async def _probe(self, lease: LeaseRecord) -> ProbeResult:
        timeout = self.settings.lease_probe_timeout_s
        workload = await self._probe_workload(lease)
        if not workload.ok or self.access_probe is None:
            return workload
        try:
            access = await asyncio.wait_for(self.access_probe(lease, timeout), timeout + 1.0)
        except TimeoutError:
            return ProbeResult(False, "access", "timeout", f"no answer within {timeout:.1f}s")
        return access if access is not None else workload

    async def _probe_workload(self, lease: LeaseRecord) -> ProbeResult:
        timeout = self.settings.lease_probe_timeout_s
        wire_id, nonce = self.desk.anonymous_id(lease.id), new_nonce()
        try:
            client = await self.pool.client(lease.miner_hotkey)
            prober: LivenessClient = client  # type: ignore[assignment]
            answer = await asyncio.wait_for(
                prober.lease_alive(wire_id, timeout_s=timeout, nonce=nonce),
                timeout + 2.0,  # the miner's own bound, plus the way there and back
            )
        except TimeoutError:
            return ProbeResult(False, "workload", "timeout", "the miner did not answer")
        except MinerCallError as exc:
            reason = "timeout" if exc.reason == "timeout" else "unreachable"
            if exc.reason == "unknown_lease":  # the miner forgot it (a restart): over
                reason = "ended"
            return ProbeResult(False, "workload", reason, f"{exc.reason}: {exc}")
        if not answer.alive:
            return ProbeResult(False, "workload", answer.reason, answer.detail)
        check = check_heartbeat(
            answer.heartbeat,
            public_key=lease.worker_public_key,
            lease_id=wire_id,
            worker_id=lease.worker_id,
            nonce=nonce,
            now=self.clock(),
            max_age_s=timeout + 2.0 + CLOCK_SKEW_S,
            max_ahead_s=CLOCK_SKEW_S,
        )
        if not check.ok:  # the miner says alive, the worker did not vouch for it
            return ProbeResult(False, "workload", check.reason, check.detail)
        return ProbeResult(True, "workload", "ok", answer.detail)

    async def _record(self, lease: LeaseRecord, result: ProbeResult, sent: float) -> None:
        async with self.store.session() as s:
            if result.ok:
                await record_probe_ok(s, lease.id, at=sent)
                return
            await record_probe_failure(
                s,
                lease.id,
                at=sent,
                target=result.target,
                reason=result.reason,
                detail=result.detail,
                last_ok_at=lease.created_at,
            )
        log.warning(
            "lease probe failed; billing stopped",
            extra={"lease": lease.id, "why": result.reason, "detail": result.detail},
        )
        if result.reason == "ended":
            # The miner has ended it (its worker was lost): it can never be billed again.
            with contextlib.suppress(IllegalTransition):
                await self.desk.fail(lease)

    async def run(
        self, stopping: asyncio.Event, leading: Callable[[], bool] = lambda: True
    ) -> None:
        """Probe every ``lease_probe_interval_s`` until ``stopping`` is set, while
        ``leading`` (this gateway replica runs the passes)."""
        while not stopping.is_set():
            try:
                if leading():
                    await self.probe_once()
            except Exception:  # one bad pass must not stop the probing
                log.exception("lease probe pass failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.settings.lease_probe_interval_s)
