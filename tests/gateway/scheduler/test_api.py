"""The scheduler's public surface is explicit and every name in it exists."""

import byteleap.gateway.scheduler as scheduler
from byteleap.errors import ByteleapError


def test_all_names_resolve_once() -> None:
    assert len(set(scheduler.__all__)) == len(scheduler.__all__)
    for name in scheduler.__all__:
        assert hasattr(scheduler, name), name


def test_public_api_is_pinned() -> None:
    expected = {
        "place", "place_many", "rank", "fit", "reschedule",
        "WorkerOffer", "GpuSpec", "Requirements", "WorkerKey", "WorkerState",
        "Placement", "PlacementPass", "PlacementPlan", "NoPlacement", "Ranking", "ScoreBreakdown",
        "PlacementWeights", "PRICE_FLOOR_PER_S", "Fit", "RejectReason", "Refusal", "Rejection",
        "FairQueue", "QueuedJob", "Attempt", "AttemptLedger", "AttemptState",
        "SchedulerError", "QueueFull", "UnknownJob", "PlacementRefused",
    }  # fmt: skip
    assert set(scheduler.__all__) == expected


def test_errors_share_one_base_under_the_project_root() -> None:
    assert issubclass(scheduler.SchedulerError, ByteleapError)
    for error in (scheduler.QueueFull, scheduler.UnknownJob, scheduler.PlacementRefused):
        assert issubclass(error, scheduler.SchedulerError)
        assert error.reason != scheduler.SchedulerError.reason
