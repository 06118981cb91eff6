"""What each tenant may still start in one pass of the dispatcher or the service loop.

The store counts what every tenant holds when a pass begins (`store.quotas`); the pass takes
from that room with each placement it makes, so placements made earlier in the same pass
count too. A tenant with no room keeps its work waiting: its jobs stay queued and its
services below their target, none of it failed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from byteleap.store.quotas import TenantQuota


@dataclass
class QuotaRoom:
    quotas: Mapping[int, TenantQuota]
    # tenant id -> workers / jobs it took in this pass
    workers_taken: dict[int, int]
    jobs_taken: dict[int, int]

    @classmethod
    def of(cls, quotas: Mapping[int, TenantQuota]) -> QuotaRoom:
        return cls(quotas, {}, {})

    def workers_left(self, tenant_id: int) -> int:
        quota = self.quotas.get(tenant_id)
        if quota is None:  # no such tenant (deleted meanwhile): nothing more for it
            return 0
        return max(0, quota.workers_free - self.workers_taken.get(tenant_id, 0))

    def jobs_left(self, tenant_id: int) -> int:
        quota = self.quotas.get(tenant_id)
        if quota is None:
            return 0
        return max(0, quota.jobs_free - self.jobs_taken.get(tenant_id, 0))

    def may_start_job(self, tenant_id: int, *, on_lease: bool) -> bool:
        """Whether one more job may start: a job on the tenant's own lease needs no worker
        of its own (the lease holds one), every job needs a running-job slot."""
        if self.jobs_left(tenant_id) < 1:
            return False
        return on_lease or self.workers_left(tenant_id) >= 1

    def take_job(self, tenant_id: int, *, on_lease: bool) -> None:
        self.jobs_taken[tenant_id] = self.jobs_taken.get(tenant_id, 0) + 1
        if not on_lease:
            self.take_workers(tenant_id, 1)

    def take_workers(self, tenant_id: int, count: int) -> None:
        self.workers_taken[tenant_id] = self.workers_taken.get(tenant_id, 0) + count

    def why_waiting(self, tenant_id: int) -> str:
        """Why the tenant's next job or replica waits (for the log and its views)."""
        quota = self.quotas.get(tenant_id)
        if quota is None:
            return "no such tenant"
        if self.jobs_left(tenant_id) < 1:
            held = quota.running_jobs + self.jobs_taken.get(tenant_id, 0)
            return f"at most {quota.max_running_jobs} running jobs; it runs {held}"
        held = quota.workers_held + self.workers_taken.get(tenant_id, 0)
        return f"at most {quota.max_workers} workers at once; it holds {held}"
