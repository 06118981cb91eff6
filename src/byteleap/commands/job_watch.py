"""`byteleap jobs submit --wait`: follow a job to its end, saying where it is on stderr.

Each step is one line as it is seen — queued, placed on a worker (and its miner), running,
queued again when a worker is lost — and, on a terminal, a spinner keeps the time spent in
the current step up to date. The end (state, exit code, time run, cost, and the gateway's
reason when it gave up on the job, e.g. no worker on offer can run it) is `end_line`, which
`jobs result` prints too. `JobSteps` and the line functions are pure; `follow` polls.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rich.console import Console

from byteleap.commands.render import duration, money, one_line
from byteleap.sdk import Client, JobState, JobView, WaitTimedOut

if TYPE_CHECKING:  # rich loads it when a spinner is shown (on a terminal only)
    from rich.status import Status

FAST_POLL_S = 0.5
SLOW_POLL_S = 2.0
FAST_FOR_S = 30.0  # poll quickly at first: most jobs people wait on are short
RUNNING_GRACE_S = 60.0  # past the job's own timeout, before we stop waiting on a gateway
ERROR_WIDTH = 500
TICK_S = 0.25  # how often the spinner's clock moves


@dataclass
class JobSteps:
    """The lines to print as views of one job arrive: one per step it takes."""

    _seen: tuple[JobState, str | None, int] | None = None

    def step(self, view: JobView) -> str | None:
        """A line when ``view`` shows a step not shown yet (None: nothing new; nor at the
        end, which is `end_line`'s)."""
        key = (view.state, view.worker_id, view.attempts)
        if key == self._seen or view.state.is_terminal:
            return None
        self._seen = key
        return step_line(view)


def step_line(view: JobView) -> str:
    attempt = f" (attempt {view.attempts})" if view.attempts > 1 else ""
    if view.state is JobState.QUEUED:
        if view.attempts:
            return f"queued again after attempt {view.attempts}: waiting for another worker"
        return "queued: waiting for a worker"
    where = _where(view)
    if view.state is JobState.SCHEDULED:
        return f"placed{where}{attempt}: starting"
    return f"running{where}{attempt}"


def live_line(view: JobView, now: float) -> str:
    """The spinner's text: the current step and how long it has lasted (by the gateway's
    clock when it said, else since the job was submitted)."""
    if view.state is JobState.RUNNING and view.started_at is not None:
        return f"running for {duration(now - view.started_at)}"
    return f"{view.state} for {duration(now - view.created_at)}"


def end_line(view: JobView) -> str:
    """``job ID succeeded (exit 0) after 3.2s on worker W, cost 0.000270``, and the reason
    when the job ended without running (or the gateway says why it failed)."""
    parts = [f"job {view.id} {view.state}"]
    if view.exit_code is not None:
        parts.append(f" (exit {view.exit_code})")
    if view.started_at is not None and view.finished_at is not None:
        parts.append(f" after {duration(view.finished_at - view.started_at)}")
    parts.append(f"{_where(view)}, cost {money(view.cost, view.currency)}")
    if view.error:
        parts.append(f": {one_line(view.error, ERROR_WIDTH)}")
    return "".join(parts)


def _where(view: JobView) -> str:
    if view.worker_id is None:
        return ""
    miner = f" (miner {view.miner_hotkey})" if view.miner_hotkey else ""
    return f" on worker {view.worker_id}{miner}"


def poll_interval(waited_s: float) -> float:
    return FAST_POLL_S if waited_s < FAST_FOR_S else SLOW_POLL_S


@contextlib.contextmanager
def ctrl_c_between_polls() -> Iterator[threading.Event]:
    """Ctrl-C sets the event instead of raising wherever the main thread happens to be.

    A KeyboardInterrupt raised inside the SDK's wait on its loop thread can land between a
    lock's acquire and its ``with`` block, and the cancel that follows then waits on that
    lock forever (seen: a `--wait` that ignored Ctrl-C until killed). `follow` checks the
    event at its own safe points and raises there. Off the main thread (no signals there),
    the event is never set."""
    pressed = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield pressed
        return
    previous = signal.signal(signal.SIGINT, lambda *_: pressed.set())
    try:
        yield pressed
    finally:
        signal.signal(signal.SIGINT, previous)


def follow(client: Client, view: JobView, console: Console) -> JobView:
    """Poll the job until it ends, printing each step on ``console``; the last view.

    No limit while it waits for a worker (the gateway fails a job no worker can run); once
    running, `WaitTimedOut` past its timeout and a grace period, should the gateway stall.
    Ctrl-C raises KeyboardInterrupt between two polls (`ctrl_c_between_polls`)."""
    steps = JobSteps()
    began = time.monotonic()
    spinner: contextlib.AbstractContextManager[Status | None] = (
        console.status("", spinner="dots") if console.is_terminal else contextlib.nullcontext()
    )
    with ctrl_c_between_polls() as pressed, spinner as status:
        while True:
            line = steps.step(view)
            if line is not None:
                console.print(line, markup=False, highlight=False, soft_wrap=True)
            if view.state.is_terminal:
                return view
            _check_stalled(view)
            _pause(status, view, poll_interval(time.monotonic() - began), pressed)
            view = client.get(view.id)


def _pause(status: Status | None, view: JobView, seconds: float, pressed: threading.Event) -> None:
    """Sleep between polls, keeping the spinner's clock moving; Ctrl-C ends it."""
    until = time.monotonic() + seconds
    while (left := until - time.monotonic()) > 0:
        if status is not None:
            status.update(live_line(view, time.time()))
        if pressed.wait(min(TICK_S, left)):
            raise KeyboardInterrupt
    if pressed.is_set():
        raise KeyboardInterrupt


def _check_stalled(view: JobView) -> None:
    if view.state is not JobState.RUNNING or view.started_at is None:
        return
    ran = time.time() - view.started_at
    if ran > view.spec.timeout_s + RUNNING_GRACE_S:
        raise WaitTimedOut(
            f"job {view.id} still running {duration(ran)} after it started, past its "
            f"{duration(view.spec.timeout_s)} timeout",
            state=view.state,
        )
