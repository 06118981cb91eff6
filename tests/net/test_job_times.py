"""A worker's signed run times: what verifies, and every way a relay could bend them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from byteleap.net.job_times import JobTimes, checked_run_seconds, job_times_payload, sign_job_times

KEY = Ed25519PrivateKey.generate()
PUBLIC = KEY.public_key().public_bytes_raw().hex()
JOB, WORKER = "job_0123456789abcdef-a1", "w-00000000000000aa"
START = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def _signed(seconds: float = 6.0, **where: object) -> JobTimes:
    fields = {"job_id": JOB, "attempt": 1, "worker_id": WORKER} | where
    return sign_job_times(
        KEY.sign,
        started_at=START,
        finished_at=START + timedelta(seconds=seconds),
        **fields,  # type: ignore[arg-type]
    )


def _check(times: JobTimes | None, public: str | None = PUBLIC, **where: object) -> float | None:
    fields = {"job_id": JOB, "attempt": 1, "worker_id": WORKER} | where
    return checked_run_seconds(times, public_key_hex=public, **fields)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**9))
def test_signed_times_verify_to_the_run_time(ms: int) -> None:
    assert _check(_signed(ms / 1000)) == pytest.approx(ms / 1000)


def test_a_statement_answers_only_its_job_attempt_and_worker() -> None:
    times = _signed()
    assert _check(times, job_id="job_other_job_id-a1") is None
    assert _check(times, attempt=2) is None
    assert _check(times, worker_id="w-00000000000000bb") is None


@pytest.mark.adversarial
def test_times_changed_on_the_way_or_signed_by_another_key_are_not_believed() -> None:
    times = _signed(6.0)
    shorter = times.model_copy(update={"finished_at_ms": times.started_at_ms + 100})
    assert _check(shorter) is None
    other = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    assert _check(times, public=other) is None
    assert _check(times, public=None) is None
    assert _check(None) is None


def test_an_end_before_the_start_is_malformed() -> None:
    times = _signed()
    with pytest.raises(ValidationError):
        JobTimes.model_validate(times.model_dump() | {"finished_at_ms": times.started_at_ms - 1})
    with pytest.raises(ValueError):
        job_times_payload(
            job_id=JOB, attempt=1, worker_id=WORKER, started_at_ms=2, finished_at_ms=1
        )


def test_the_payload_is_fixed_and_domain_separated() -> None:
    payload = job_times_payload(
        job_id=JOB, attempt=1, worker_id=WORKER, started_at_ms=1, finished_at_ms=2
    )
    assert payload.startswith(b"byteleap/job-times/v1\x00")
    assert len(payload) == 22 + 1 + len(JOB) + 4 + 8 + 8 + 8
