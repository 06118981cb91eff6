"""What a pod's status says about a job, read from the API's JSON form of a pod. Pure: no I/O.

The executor sees pods through a watch; each event's pod becomes a ``PodView``, and the
decisions (has it started, can it still start, how did it end) are made here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from byteleap.protocol.execution import KilledBy
from byteleap.worker.executors.k8s_settings import CONTAINER_NAME

#: Waiting reasons after which the container will not start without someone fixing the spec
#: or the image (``ErrImagePull`` alone is retried by the kubelet; its back-off is not news).
FATAL_WAITING = frozenset(
    {
        "ImagePullBackOff",
        "InvalidImageName",
        "ErrImageNeverPull",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)


@dataclass(frozen=True)
class Terminated:
    exit_code: int
    reason: str  # "Completed", "Error", "OOMKilled", "ContainerCannotRun" …
    message: str


@dataclass(frozen=True)
class PodView:
    name: str
    phase: str  # Pending, Running, Succeeded, Failed, Unknown
    reason: str  # the pod's own reason ("Evicted", "DeadlineExceeded"), often empty
    message: str
    waiting_reason: str
    waiting_message: str
    running: bool
    terminated: Terminated | None
    unschedulable: str  # the scheduler's message while it finds no node, else ""

    @property
    def started(self) -> bool:
        """The program runs or ran: its timeout counts, its logs can be read."""
        return self.running or self.terminated is not None

    @property
    def ended(self) -> bool:
        return self.terminated is not None or self.phase in {"Succeeded", "Failed"}

    @property
    def start_failure(self) -> str | None:
        """Why the container will never start, or None while it still may."""
        if self.waiting_reason in FATAL_WAITING:
            return f"{self.waiting_reason}: {self.waiting_message}".rstrip(": ")
        if self.phase == "Failed" and self.terminated is None:
            return f"pod failed before its container ran: {self.reason} {self.message}".strip()
        return None


def pod_view(pod: Mapping[str, Any]) -> PodView:
    """A pod as the API serialises it (camelCase keys) → the part the executor reads."""
    status = pod.get("status") or {}
    container: Mapping[str, Any] = next(
        (c for c in status.get("containerStatuses") or [] if c.get("name") == CONTAINER_NAME),
        {},
    )
    state = container.get("state") or {}
    waiting = state.get("waiting") or {}
    done = state.get("terminated")
    terminated = (
        Terminated(
            exit_code=int(done.get("exitCode", -1)),
            reason=done.get("reason") or "",
            message=done.get("message") or "",
        )
        if done
        else None
    )
    unschedulable = next(
        (
            c.get("message") or "unschedulable"
            for c in status.get("conditions") or []
            if c.get("type") == "PodScheduled"
            and c.get("status") == "False"
            and c.get("reason") == "Unschedulable"
        ),
        "",
    )
    return PodView(
        name=(pod.get("metadata") or {}).get("name", ""),
        phase=status.get("phase") or "Unknown",
        reason=status.get("reason") or "",
        message=status.get("message") or "",
        waiting_reason=waiting.get("reason") or "",
        waiting_message=waiting.get("message") or "",
        running=bool(state.get("running")),
        terminated=terminated,
        unschedulable=unschedulable,
    )


@dataclass(frozen=True)
class Ending:
    """How the execution ended, in the terms of ``OutputLog.result``."""

    code: int
    killed_by: KilledBy | None
    detail: str
    failed: bool  # an end that is neither the program's nor ours


def ending(view: PodView | None, *, cause: KilledBy | None, cause_detail: str) -> Ending:
    """The ending from the last pod view seen and what we stopped it for (if we did)."""
    if cause is not None:
        code = view.terminated.exit_code if view and view.terminated else -1
        return Ending(code, cause, cause_detail, failed=False)
    if view is None:
        return Ending(-1, None, "the pod vanished before it reported an end", failed=True)
    if (done := view.terminated) is not None:
        if done.reason == "OOMKilled":
            return Ending(done.exit_code, "memory", "killed by the OOM killer", failed=False)
        detail = "" if done.exit_code == 0 else f"exited with status {done.exit_code}"
        if done.exit_code != 0 and done.reason not in {"", "Error", "Completed"}:
            detail += f" ({done.reason}{': ' + done.message if done.message else ''})"
        return Ending(done.exit_code, None, detail, failed=False)
    why = f"{view.reason} {view.message}".strip() or f"pod phase {view.phase}"
    return Ending(-1, None, f"the pod ended without a container exit: {why}", failed=True)
