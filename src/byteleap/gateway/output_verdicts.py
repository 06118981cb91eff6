"""Output validation, the pure part: what a result's digest is, which jobs to re-execute,
and who was wrong once the runs are in.

A deterministic job's result is summed up as a :class:`ResultDigest` — its exit code, the
sha256 of its stdout (the tail the worker returns, with the count of bytes it dropped) and
the path, size and sha256 of every artifact. The gateway re-executes a sampled fraction of
deterministic jobs (all of those whose customer asks) on a worker of another miner and
compares digests (:func:`decide`):

- the second run agrees with the first: ``match``;
- it disagrees: a third run on a third miner decides by majority. The miners outside the
  majority are at fault (they lose their lease score for the window); the customer is
  refunded only when its own result (run 0) was outside the majority;
- no majority (three different digests): nobody can be blamed — the job was most likely
  not deterministic after all, which is the customer's doing — so no miner is penalised
  and nothing is refunded.

Pure: no I/O, no clock, no randomness (the sampling draw is passed in).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from byteleap.protocol.execution import ExecutionResult, ExecutionState

__all__ = [
    "MAX_RUNS",
    "NeedRuns",
    "Outcome",
    "ResultDigest",
    "Run",
    "Verdict",
    "decide",
    "digest_of",
    "has_result",
    "pick_checker",
    "should_validate",
]

#: The original, one re-execution and, on a disagreement, the tie-breaker.
MAX_RUNS = 3
_DOMAIN = "byteleap/result-digest/v1"


class Outcome(StrEnum):
    MATCH = "match"
    MISMATCH = "mismatch"


@dataclass(frozen=True, slots=True)
class ResultDigest:
    """What two honest runs of a deterministic job must agree on."""

    exit_code: int
    stdout_sha256: str
    artifacts: tuple[tuple[str, int, str], ...]  # (path, size, sha256), sorted by path

    @property
    def hex(self) -> str:
        """One sha256 over the canonical JSON of the parts (stored and compared)."""
        body = json.dumps(
            [_DOMAIN, self.exit_code, self.stdout_sha256, [list(a) for a in self.artifacts]],
            separators=(",", ":"),
            ensure_ascii=True,
        )
        return hashlib.sha256(body.encode("ascii")).hexdigest()


def digest_of(result: ExecutionResult) -> ResultDigest:
    """The digest of a finished run; stdout counts with the bytes the worker dropped, so two
    programs whose output differs only before the returned tail still differ."""
    stdout = hashlib.sha256()
    stdout.update(str(result.stdout_dropped_bytes).encode() + b"\n")
    stdout.update(result.stdout_tail.encode("utf-8", errors="surrogatepass"))
    artifacts = tuple(sorted((a.path, a.size, a.sha256) for a in result.artifacts))
    return ResultDigest(result.exit_code, stdout.hexdigest(), artifacts)


def has_result(result: ExecutionResult | None) -> bool:
    """Whether a run produced something to compare: it ran to its own end (success or a
    failing exit). A timeout, a cancel or a lost worker says nothing about the output."""
    return result is not None and result.state in (ExecutionState.SUCCEEDED, ExecutionState.FAILED)


_T = TypeVar("_T")


def should_validate(*, deterministic: bool, requested: bool, fraction: float, draw: float) -> bool:
    """Re-execute this job? Only deterministic ones; always when asked, else with
    probability ``fraction`` (``draw`` uniform in [0, 1))."""
    if not deterministic:
        return False
    return requested or draw < fraction


def pick_checker(fitting: Sequence[_T], draw: float) -> _T:
    """The worker to re-execute on, uniformly among every one that fits (``draw`` uniform in
    [0, 1)), never the best-ranked: a miner that ranks first would otherwise check every
    other miner's jobs and decide every verdict, and a miner that can predict who checks
    it can collude with them."""
    if not fitting:
        raise ValueError("no worker to pick from")
    return fitting[min(int(draw * len(fitting)), len(fitting) - 1)]


@dataclass(frozen=True, slots=True)
class Run:
    """One finished run of a job: who ran it and the digest it returned (hex)."""

    miner_hotkey: str
    digest: str


@dataclass(frozen=True, slots=True)
class NeedRuns:
    """Not decided yet: run it again on a miner not in ``exclude``."""

    exclude: frozenset[str]


@dataclass(frozen=True, slots=True)
class Verdict:
    outcome: Outcome
    majority: str | None  # the digest most runs agree on; None when there is no majority
    faulty: tuple[str, ...]  # miners whose digest differs from the majority's
    refund: bool  # the customer's own result (run 0) was outside the majority
    reason: str


def decide(runs: Sequence[Run]) -> NeedRuns | Verdict:
    """The next step for a job whose finished runs are ``runs`` (run 0 is the customer's).

    Every run must come from a different miner (a miner cannot vote twice).
    """
    if not runs:
        raise ValueError("no runs: the customer's own run comes first")
    miners = [r.miner_hotkey for r in runs]
    if len(set(miners)) != len(miners):
        raise ValueError("two runs from one miner")
    if len(runs) > MAX_RUNS:
        raise ValueError(f"more than {MAX_RUNS} runs")
    counts = Counter(r.digest for r in runs)
    if len(counts) == 1 and len(runs) >= 2:
        return Verdict(Outcome.MATCH, runs[0].digest, (), refund=False, reason="all runs agree")
    if len(runs) < MAX_RUNS:
        return NeedRuns(exclude=frozenset(miners))
    digest, votes = counts.most_common(1)[0]
    if votes * 2 <= len(runs):
        return Verdict(
            Outcome.MISMATCH,
            None,
            (),
            refund=False,
            reason="no majority: the job is not deterministic",
        )
    faulty = tuple(r.miner_hotkey for r in runs if r.digest != digest)
    refund = runs[0].digest != digest
    whose = "the customer's run" if refund else "a re-execution"
    return Verdict(
        Outcome.MISMATCH,
        digest,
        faulty,
        refund=refund,
        reason=f"{whose} disagreed with the majority",
    )
