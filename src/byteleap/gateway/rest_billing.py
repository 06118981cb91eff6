"""REST routes of a tenant's money (`billing.Billing`), mounted by `mount_billing`:

- ``GET /v1/balance``: balance, held, available, in the gateway's currency;
- ``GET /v1/usage?since=&until=&limit=``: charges per billed item and per UTC day;
- ``GET /v1/prices``: the price list and the workers on offer it prices;
- ``POST /v1/jobs/estimate``: a job spec's dry run: the hold its submit would place and the
  workers that fit it now; nothing is created.

Every answer names its ``currency``; amounts stay JSON numbers.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, FastAPI, Query

from byteleap.gateway.billing import Billing
from byteleap.gateway.request_guard import TenantFirstRoute
from byteleap.gateway.rest_common import ERROR_RESPONSES, TenantDep
from byteleap.protocol.api import JobSpec
from byteleap.protocol.billing import Balance, JobEstimate, Prices, Usage

Epoch = Annotated[float | None, Query(ge=0, le=1e11, allow_inf_nan=False)]


def mount_billing(app: FastAPI, billing: Billing) -> None:
    """Serve the billing routes from the gateway's app (made by `create_rest_app`)."""
    app.include_router(billing_router(billing))


def billing_router(billing: Billing) -> APIRouter:
    router = APIRouter(
        prefix="/v1", tags=["billing"], responses=ERROR_RESPONSES, route_class=TenantFirstRoute
    )

    @router.get("/balance", response_model=Balance)
    async def balance(tenant: TenantDep) -> Balance:
        """The balance, what running work holds of it, and what new work may use."""
        return await billing.balance(tenant)

    @router.get("/usage", response_model=Usage)
    async def usage(
        tenant: TenantDep,
        since: Epoch = None,
        until: Epoch = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> Usage:
        """Charges and credits in ``[since, until)`` (epoch seconds; default the last 30
        days, at most 366): per item (a job, a lease, a service), the last charged first, at
        most ``limit``; and per UTC day."""
        return await billing.usage(tenant, since=since, until=until, limit=limit)

    @router.get("/prices", response_model=Prices)
    async def prices(tenant: TenantDep) -> Prices:
        """The price of one GPU of each model and of one CPU core per second (what holds and
        charges are computed from), and how many workers on offer each prices now."""
        return await billing.prices()

    @router.post("/jobs/estimate", response_model=JobEstimate)
    async def estimate(spec: JobSpec, tenant: TenantDep) -> JobEstimate:
        """What submitting ``spec`` would hold (price × timeout) and the workers on offer
        that fit it now; nothing is created and no money moves."""
        return await billing.estimate(tenant, spec)

    return router
