from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byteleap.store import (
    CHALLENGE_TRANSITIONS,
    WORKER_TRANSITIONS,
    ChallengeStatus,
    IllegalTransition,
    WorkerState,
)
from byteleap.store.transitions import check_challenge_transition, check_worker_transition


def test_tables_cover_every_state() -> None:
    assert set(CHALLENGE_TRANSITIONS) == set(ChallengeStatus)
    assert set(WORKER_TRANSITIONS) == set(WorkerState)


def test_terminal_challenge_states_are_the_verdicts() -> None:
    assert ChallengeStatus.terminal() == {
        ChallengeStatus.PASSED,
        ChallengeStatus.FAILED,
        ChallengeStatus.TIMED_OUT,
        ChallengeStatus.ERRORED,
        ChallengeStatus.ABANDONED,
    }


def test_every_open_state_can_reach_a_terminal_one() -> None:
    for status in ChallengeStatus:
        if not status.is_terminal:
            assert CHALLENGE_TRANSITIONS[status] & ChallengeStatus.terminal()


def test_pass_needs_a_commitment_first() -> None:
    with pytest.raises(IllegalTransition):
        check_challenge_transition(ChallengeStatus.ISSUED, ChallengeStatus.PASSED, challenge_id="c")


@given(st.sampled_from(sorted(ChallengeStatus.terminal())), st.sampled_from(list(ChallengeStatus)))
def test_no_way_out_of_a_terminal_status(current: ChallengeStatus, new: ChallengeStatus) -> None:
    with pytest.raises(IllegalTransition) as info:
        check_challenge_transition(current, new, challenge_id="c1")
    assert info.value.reason == "illegal_transition"
    assert "terminal" in str(info.value)


@given(st.sampled_from(list(WorkerState)))
def test_only_an_idle_worker_can_be_challenged(current: WorkerState) -> None:
    if current in (WorkerState.IDLE, WorkerState.CHALLENGED):
        check_worker_transition(current, WorkerState.CHALLENGED, worker_id=1)
    else:
        with pytest.raises(IllegalTransition):
            check_worker_transition(current, WorkerState.CHALLENGED, worker_id=1)
