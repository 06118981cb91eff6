"""A job's run time in the worker's own words: its start and end, signed with the worker key.

The gateway bills a job for the seconds it ran. What the gateway itself sees is not that:
it notices a start when the miner acknowledges it and an end when a later pass asks, so
a gateway that was down or slow would bill its own delay (a 6 s run once billed 13.9 s).
The worker knows when the program started and ended; it signs those two instants with
the Ed25519 key it enrolled with (the key its challenge commitments and lease heartbeats
are checked against), and the miner only relays the statement, unable to change it.

Byte format of the signed payload (integers big-endian)::

    field          bytes  content
    domain           22   b"byteleap/job-times/v1\\x00"
    job_id_len        1   length of the job id in bytes (8..64, ASCII)
    job_id          1-64  the job id as the miner knows it
    attempt           4   unsigned
    worker_id         8   the worker id's 64 bits (``w-`` + 16 hex, the hex part raw)
    started_at_ms     8   unsigned: when the program started, ms since the unix epoch
    finished_at_ms    8   unsigned: when it ended (>= started_at_ms)

:func:`checked_run_seconds` is what the gateway runs: pure, no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, model_validator

from byteleap.protocol.ids import Bytes64Hex

DOMAIN = b"byteleap/job-times/v1\x00"
MAX_MS = 2**63 - 1

_JOB = re.compile(r"[A-Za-z0-9_-]{8,64}")
_WORKER = re.compile(r"w-[0-9a-f]{16}")


class JobTimes(BaseModel):
    """Worker → miner → gateway: when one attempt of a job ran, signed by its worker."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    job_id: str = Field(pattern=r"^[A-Za-z0-9_-]{8,64}$")
    attempt: int = Field(ge=0, le=2**32 - 1)
    worker_id: str = Field(pattern=r"^w-[0-9a-f]{16}$")
    started_at_ms: int = Field(ge=0, le=MAX_MS)
    finished_at_ms: int = Field(ge=0, le=MAX_MS)
    signature: Bytes64Hex

    @model_validator(mode="after")
    def _ordered(self) -> JobTimes:
        if self.finished_at_ms < self.started_at_ms:
            raise ValueError("a job cannot end before it started")
        return self

    @property
    def seconds(self) -> float:
        return (self.finished_at_ms - self.started_at_ms) / 1000

    def payload(self) -> bytes:
        return job_times_payload(
            job_id=self.job_id,
            attempt=self.attempt,
            worker_id=self.worker_id,
            started_at_ms=self.started_at_ms,
            finished_at_ms=self.finished_at_ms,
        )


def job_times_payload(
    *, job_id: str, attempt: int, worker_id: str, started_at_ms: int, finished_at_ms: int
) -> bytes:
    """The canonical bytes a worker signs (see the module docstring); ValueError when a field
    is not of its fixed form."""
    if not (_JOB.fullmatch(job_id) and _WORKER.fullmatch(worker_id)):
        raise ValueError("job times name an 8-64 character job id and a 64-bit worker")
    if not 0 <= attempt < 2**32 or not 0 <= started_at_ms <= finished_at_ms <= MAX_MS:
        raise ValueError("attempt or times out of range")
    job = job_id.encode("ascii")
    return (
        DOMAIN
        + len(job).to_bytes(1, "big")
        + job
        + attempt.to_bytes(4, "big")
        + bytes.fromhex(worker_id[2:])
        + started_at_ms.to_bytes(8, "big")
        + finished_at_ms.to_bytes(8, "big")
    )


def _ms(at: datetime) -> int:
    return max(0, round(at.timestamp() * 1000))


def sign_job_times(
    sign: Callable[[bytes], bytes],
    *,
    job_id: str,
    attempt: int,
    worker_id: str,
    started_at: datetime,
    finished_at: datetime,
) -> JobTimes:
    """The statement for one attempt, signed with ``sign`` (the worker's Ed25519 key)."""
    started = _ms(started_at)
    finished = max(started, _ms(finished_at))
    fields = {
        "job_id": job_id,
        "attempt": attempt,
        "worker_id": worker_id,
        "started_at_ms": started,
        "finished_at_ms": finished,
    }
    signature = sign(job_times_payload(**fields)).hex()  # type: ignore[arg-type]
    return JobTimes.model_validate({**fields, "signature": signature})


def checked_run_seconds(
    times: JobTimes | None,
    *,
    public_key_hex: str | None,
    job_id: str,
    attempt: int,
    worker_id: str,
) -> float | None:
    """How long the attempt ran by its worker's signed word; None when there is no such
    word to trust (no statement, no enrolled key, another job, attempt or worker, or a
    signature that does not verify)."""
    if times is None or public_key_hex is None:
        return None
    if (times.job_id, times.attempt, times.worker_id) != (job_id, attempt, worker_id):
        return None
    try:
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        key.verify(bytes.fromhex(times.signature), times.payload())
    except (ValueError, InvalidSignature):
        return None
    return times.seconds


__all__ = ["JobTimes", "checked_run_seconds", "job_times_payload", "sign_job_times"]
