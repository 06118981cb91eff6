"""Pure arithmetic of the network view: pass rates, availability shares, timelines."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from byteleap.gateway.network.models import ChallengeTotals, TimelinePoint
from byteleap.protocol.states import ChallengeStatus
from byteleap.store.network import TimelineCell

FAILURES = frozenset({ChallengeStatus.FAILED, ChallengeStatus.TIMED_OUT, ChallengeStatus.ERRORED})
IN_FLIGHT = frozenset({ChallengeStatus.ISSUED, ChallengeStatus.COMMITTED})


def pass_rate(passed: int, failed: int) -> float | None:
    """passed ÷ (passed + failed); None when nothing was decided yet."""
    decided = passed + failed
    return passed / decided if decided else None


def failures(counts: Mapping[ChallengeStatus, int]) -> int:
    return sum(counts.get(status, 0) for status in FAILURES)


def challenge_totals(
    per_worker: Iterable[Mapping[ChallengeStatus, int]], *, window_s: float
) -> ChallengeTotals:
    total: dict[ChallengeStatus, int] = dict.fromkeys(ChallengeStatus, 0)
    for counts in per_worker:
        for status, n in counts.items():
            total[status] += n
    passed, failed = total[ChallengeStatus.PASSED], failures(total)
    return ChallengeTotals(
        window_s=window_s,
        passed=passed,
        failed=failed,
        wrong=total[ChallengeStatus.FAILED],
        in_flight=sum(total[s] for s in IN_FLIGHT),
        abandoned=total[ChallengeStatus.ABANDONED],
        pass_rate=pass_rate(passed, failed),
    )


def availability_share(
    online_buckets: int, *, first_seen_bucket: int, since_bucket: int, now_bucket: int
) -> float | None:
    """Share of the buckets in ``[max(since, first seen), now]`` the worker was online.

    Counting from when the worker was first seen, not from the window's start, so a worker
    that joined an hour ago and never left reads 1.0 rather than the 169-hour score's ~0.
    None when the range is empty (a worker from the future: clock skew).
    """
    start = max(since_bucket, first_seen_bucket)
    span = now_bucket - start + 1
    if span <= 0:
        return None
    return min(1.0, max(0.0, online_buckets / span))


def mean(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def timeline(
    cells: Iterable[TimelineCell], *, since: int, step_s: int, points: int
) -> list[TimelinePoint]:
    """One point per slot from ``since``, empty slots included, so a chart's x axis is even."""
    rows = [
        TimelinePoint(start=since + i * step_s, passed=0, failed=0, other=0) for i in range(points)
    ]
    for cell in cells:
        if not 0 <= cell.step < points:
            continue
        row = rows[cell.step]
        if cell.status is ChallengeStatus.PASSED:
            row.passed += cell.count
        elif cell.status in FAILURES:
            row.failed += cell.count
        else:
            row.other += cell.count
    return rows


def weights_by_hotkey(
    weights: Mapping[int, float], hotkey_of: Mapping[int, str]
) -> dict[str, float]:
    """uid → weight as hotkey → weight; a uid the store does not know stays ``uid:N``."""
    return {hotkey_of.get(uid, f"uid:{uid}"): w for uid, w in weights.items()}
