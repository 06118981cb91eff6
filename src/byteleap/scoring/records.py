"""What scoring reads: plain, frozen records the validator's store hands over.

Times are unix seconds (float). A worker is named by ``(miner_hotkey, worker_id)``: worker ids
are only unique within their miner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from byteleap.scoring.errors import ScoringError

__all__ = [
    "VERIFIED_WRONG",
    "ChallengeRecord",
    "FailureReason",
    "IpChange",
    "LeaseRevenue",
    "Verdict",
    "WorkerAvailability",
    "WorkerKey",
]

WorkerKey = tuple[str, str]
"""``(miner_hotkey, worker_id)``."""


class Verdict(StrEnum):
    OK = "ok"
    FAILED = "failed"


class FailureReason(StrEnum):
    """Why a challenge failed. Only the verified ones (see ``VERIFIED_WRONG``) ban a worker."""

    TIMEOUT = "timeout"
    DISCONNECTED = "disconnected"
    MALFORMED = "malformed"
    BAD_PROOF = "bad_proof"
    WRONG_ANSWER = "wrong_answer"


# A mismatching entry or a Merkle proof that does not open the committed root can only come
# from a worker that committed to something other than the product; a timeout or garbage can
# come from a flaky link, so it only costs participation.
VERIFIED_WRONG: frozenset[FailureReason] = frozenset(
    {FailureReason.WRONG_ANSWER, FailureReason.BAD_PROOF}
)


def _check_amount(value: float, what: str) -> None:
    if not math.isfinite(value) or value < 0:
        raise ScoringError(f"{what} must be finite and >= 0, got {value!r}", reason="bad_" + what)


@dataclass(frozen=True, slots=True)
class ChallengeRecord:
    """One challenge as recorded by a round: verdict, why it failed, verified throughput.

    ``throughput_flops`` counts only when the verdict is OK; on a failure it is ignored.
    """

    worker_id: str
    miner_hotkey: str
    at: float
    verdict: Verdict
    failure_reason: FailureReason | None = None
    throughput_flops: float = 0.0

    def __post_init__(self) -> None:
        if (self.verdict is Verdict.OK) != (self.failure_reason is None):
            raise ScoringError(
                "a failed record needs a failure_reason and a passed one must not have one",
                reason="bad_verdict",
                worker_id=self.worker_id,
            )
        _check_amount(self.throughput_flops, "throughput")

    @property
    def key(self) -> WorkerKey:
        return (self.miner_hotkey, self.worker_id)

    @property
    def verified_wrong(self) -> bool:
        return self.failure_reason in VERIFIED_WRONG


@dataclass(frozen=True, slots=True)
class WorkerAvailability:
    """How many availability buckets (5 min) the worker was online in the last 169 h."""

    miner_hotkey: str
    worker_id: str
    online_buckets: int

    def __post_init__(self) -> None:
        if self.online_buckets < 0:
            raise ScoringError("online_buckets must be >= 0", reason="bad_availability")

    @property
    def key(self) -> WorkerKey:
        return (self.miner_hotkey, self.worker_id)


@dataclass(frozen=True, slots=True)
class IpChange:
    """The worker was seen at a new IP address at ``at``."""

    miner_hotkey: str
    worker_id: str
    at: float

    @property
    def key(self) -> WorkerKey:
        return (self.miner_hotkey, self.worker_id)


@dataclass(frozen=True, slots=True)
class LeaseRevenue:
    """Verified revenue from one lease receipt: ``amount`` for the period ending at ``at``.

    ``worker_id`` names the leased worker (revenue counts only while that worker has passed a
    challenge, so a record without one never counts). ``lease_start`` is when the lease began
    (its first billed period's start): a leased worker is not challenged, so the challenge that
    vouches for every period of a lease is the one before the lease began. None: ``at``.
    """

    miner_hotkey: str
    amount: float
    at: float
    worker_id: str = ""
    lease_start: float | None = None

    def __post_init__(self) -> None:
        _check_amount(self.amount, "lease_amount")
        start = self.lease_start
        if start is not None and not (math.isfinite(start) and start <= self.at):
            raise ScoringError(
                f"lease_start must be finite and at or before the period's end, got {start!r}",
                reason="bad_lease_start",
            )

    @property
    def key(self) -> WorkerKey:
        return (self.miner_hotkey, self.worker_id)

    @property
    def anchor(self) -> float:
        """The time the vouching challenge must be near: the lease's start, else ``at``."""
        return self.at if self.lease_start is None else self.lease_start
