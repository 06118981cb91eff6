"""``/v1/network/*``: the public, read-only network view (no API key; no tenant data)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from byteleap.gateway.network.models import (
    ChallengeHistory,
    MinerList,
    NetworkOverview,
    ScoreHistory,
    WeightHistory,
)
from byteleap.gateway.network.view import (
    MAX_HOURS,
    MAX_POINTS,
    MAX_RECENT,
    MAX_WEIGHT_SETS,
    NetworkView,
)


def network_router(view: NetworkView) -> APIRouter:
    router = APIRouter(prefix="/v1/network", tags=["network"])

    @router.get("/overview", response_model=NetworkOverview)
    async def overview() -> NetworkOverview:
        """Miners, workers, GPUs, challenges in the scoring window, availability, and jobs,
        leases and services counted by state."""
        return await view.overview()

    @router.get("/miners", response_model=MinerList)
    async def miners() -> MinerList:
        """Every miner the validator knows, with its workers and their challenge results."""
        return await view.miners()

    @router.get("/challenges", response_model=ChallengeHistory)
    async def challenges(
        hours: Annotated[float, Query(gt=0, le=MAX_HOURS)] = 3.0,
        points: Annotated[int, Query(ge=1, le=MAX_POINTS)] = 36,
        limit: Annotated[int, Query(ge=0, le=MAX_RECENT)] = 50,
    ) -> ChallengeHistory:
        """Passed and failed challenges per time slot over ``hours``, and the newest ones."""
        return await view.challenges(hours=hours, points=points, limit=limit)

    @router.get("/scores", response_model=ScoreHistory)
    async def scores(
        points: Annotated[int, Query(ge=1, le=24)] = 12,
        hours: Annotated[float | None, Query(gt=0, le=MAX_HOURS)] = None,
    ) -> ScoreHistory:
        """Miners' challenge, lease and final scores and weights, recomputed from the store
        at ``points`` moments over ``hours`` (default: the scoring window)."""
        return await view.scores(points=points, hours=hours)

    @router.get("/weights", response_model=WeightHistory)
    async def weights(
        limit: Annotated[int, Query(ge=1, le=MAX_WEIGHT_SETS)] = 50,
    ) -> WeightHistory:
        """The newest weight sets the validator computed, oldest first, by hotkey."""
        return await view.weights(limit=limit)

    return router
