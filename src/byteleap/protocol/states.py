"""Lifecycle enums for challenges and workers, with their allowed transitions.

The tables are the single source of truth: the store consults them on every
status change and raises :class:`IllegalTransition` for a move they do not list.
A terminal challenge status has no way out, so a recorded verdict never changes.
"""

from __future__ import annotations

from enum import StrEnum


class ChallengeStatus(StrEnum):
    ISSUED = "issued"  # recorded and sent; waiting for the commitment
    COMMITTED = "committed"  # root received; reveal/verify in progress
    PASSED = "passed"  # proofs and sampled entries verified
    FAILED = "failed"  # verified wrong: bad proof or mismatching entry (evidence of cheating)
    TIMED_OUT = "timed_out"  # no (complete) answer before the deadline
    ERRORED = "errored"  # malformed answer, refusal, disconnect: a failure, not proof of cheating
    # the validator lost it (crash/restart), or its own gateway's customer took the worker
    # between listing and issue (``preempted: …``); counts for nobody
    ABANDONED = "abandoned"

    @classmethod
    def terminal(cls) -> frozenset[ChallengeStatus]:
        return frozenset(s for s, nxt in CHALLENGE_TRANSITIONS.items() if not nxt)

    @property
    def is_terminal(self) -> bool:
        return not CHALLENGE_TRANSITIONS[self]


_S = ChallengeStatus
_ENDINGS = frozenset({_S.FAILED, _S.TIMED_OUT, _S.ERRORED, _S.ABANDONED})
CHALLENGE_TRANSITIONS: dict[ChallengeStatus, frozenset[ChallengeStatus]] = {
    _S.ISSUED: frozenset({_S.COMMITTED}) | _ENDINGS,
    _S.COMMITTED: frozenset({_S.PASSED}) | _ENDINGS,
    _S.PASSED: frozenset(),
    _S.FAILED: frozenset(),
    _S.TIMED_OUT: frozenset(),
    _S.ERRORED: frozenset(),
    _S.ABANDONED: frozenset(),
}


class WorkerState(StrEnum):
    """The validator's view of a worker, as its miner reports it."""

    IDLE = "idle"
    CHALLENGED = "challenged"
    LEASED = "leased"
    BUSY = "busy"
    OFFLINE = "offline"


_W = WorkerState
# Snapshots from a miner can skip intermediate states, so most moves are allowed;
# the rule that matters is that only an idle worker may be challenged (a leased
# or busy worker is never challenged; an offline one cannot be).
WORKER_TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    _W.IDLE: frozenset({_W.CHALLENGED, _W.LEASED, _W.BUSY, _W.OFFLINE}),
    _W.CHALLENGED: frozenset({_W.IDLE, _W.LEASED, _W.BUSY, _W.OFFLINE}),
    _W.LEASED: frozenset({_W.IDLE, _W.BUSY, _W.OFFLINE}),
    _W.BUSY: frozenset({_W.IDLE, _W.LEASED, _W.OFFLINE}),
    _W.OFFLINE: frozenset({_W.IDLE, _W.LEASED, _W.BUSY}),
}
