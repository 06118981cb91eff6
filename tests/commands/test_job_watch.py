"""What `jobs submit --wait` says at each step of a job, and at its end (pure)."""

from __future__ import annotations

from byteleap.commands.job_watch import JobSteps, end_line, live_line, poll_interval
from byteleap.sdk import JobSpec, JobState, JobView

T0 = 1_700_000_000.0


def _view(state: JobState, **changes: object) -> JobView:
    base = JobView(id="job-1", state=state, spec=JobSpec(command=["train"]), created_at=T0)
    return base.model_copy(update=changes)


def test_each_step_is_said_once_in_order() -> None:
    steps = JobSteps()
    on_w1 = {"worker_id": "w1", "miner_hotkey": "5Miner", "attempts": 1}
    views = [
        _view(JobState.QUEUED),
        _view(JobState.QUEUED),  # nothing new
        _view(JobState.SCHEDULED, **on_w1),
        _view(JobState.RUNNING, **on_w1, started_at=T0 + 2),
        _view(JobState.RUNNING, **on_w1, started_at=T0 + 2),
        _view(JobState.QUEUED, attempts=1),  # its worker was lost
        _view(JobState.RUNNING, worker_id="w2", attempts=2),
        _view(JobState.SUCCEEDED, worker_id="w2", attempts=2, exit_code=0),
    ]
    said = [line for view in views if (line := steps.step(view)) is not None]
    assert said == [
        "queued: waiting for a worker",
        "placed on worker w1 (miner 5Miner): starting",
        "running on worker w1 (miner 5Miner)",
        "queued again after attempt 1: waiting for another worker",
        "running on worker w2 (attempt 2)",
    ]


def test_the_end_says_state_code_time_place_and_cost() -> None:
    view = _view(
        JobState.FAILED, worker_id="w1", miner_hotkey="5Miner", exit_code=7,
        started_at=T0 + 1, finished_at=T0 + 185, cost=0.00027000000000000006,
    )  # fmt: skip
    assert end_line(view) == (
        "job job-1 failed (exit 7) after 3m04s on worker w1 (miner 5Miner), cost 0.000270 TAO"
    )


def test_the_end_of_a_job_no_worker_could_run_gives_the_reason() -> None:
    reason = "no worker on offer can run it (needs 1 GPU); waited 600s"
    view = _view(JobState.FAILED, error=reason, finished_at=T0 + 600)
    assert end_line(view) == f"job job-1 failed, cost 0.000000 TAO: {reason}"


def test_a_multi_line_error_stays_on_the_end_line() -> None:
    view = _view(JobState.FAILED, error="not started:\nboom")
    assert end_line(view).endswith(r": not started:\nboom")


def test_live_line_counts_from_the_start_or_the_submit() -> None:
    assert live_line(_view(JobState.QUEUED), T0 + 12.5) == "queued for 12s"
    running = _view(JobState.RUNNING, started_at=T0 + 10)
    assert live_line(running, T0 + 75) == "running for 1m05s"


def test_polls_slow_down_after_a_while() -> None:
    assert poll_interval(0) < poll_interval(3600)
