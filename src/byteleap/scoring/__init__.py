"""Scoring: pure functions from recorded challenges, availability and lease revenue to weights.

No I/O, no database, no network: the validator's store hands over plain records
(``records``), ``score_network`` (or ``score_columns`` on arrays) returns a ``ScoreBoard`` and
``normalise_weights`` turns its final scores into ``{uid: weight}``. Every number is a
``ScoringParams`` field.

Per worker, over the window (180 min) ending at ``now`` (see ``challenge`` and ``availability``):
participation p (failures cancel successes), performance (lower-tail mean of verified
throughput up to the median, so steady beats spiky), availability a (share of 5-minute buckets
online over 169 h, halved per IP change, 0 from 3 changes), score = performance × p × a, and 0
while a verified wrong answer (wrong entry or bad Merkle proof, never a timeout) is younger than
``wrong_answer_ban_min``.

Per miner: challenge_raw = sum of its best K (100) worker scores; challenge = challenge_raw
÷ the best miner's; lease = verified lease revenue in the lease window ÷ the best miner's;
final = 0.7 × lease + 0.3 × challenge.

**No lease anywhere.** While no miner has lease revenue in the window (``ScoreBoard.
lease_active`` is False; the case until lease receipts exist), final = challenge: the lease
share is handed to the challenge score rather than left unpaid, so weights follow challenge
scores instead of all being scaled down (after normalisation the weights are the same either
way; the printed ``final`` is what changes). As soon as one miner has revenue the 0.7/0.3 split
applies to everyone, and miners with no lease get at most 0.3.

**All zero.** Empty or all-zero scores give no weights (an empty dict), never NaN and never a
uniform spread; see ``weights``.

Errors: ``ScoringError`` (reason says which input) for records that cannot be scored.
"""

from byteleap.scoring.availability import (
    availability_fractions,
    bucket_index,
    online_bucket_counts,
)
from byteleap.scoring.board import score_columns, score_network
from byteleap.scoring.challenge import (
    MAX_THROUGHPUT_FLOPS,
    ChallengeColumns,
    ChallengeStats,
    challenge_stats,
    lower_tail_mean,
)
from byteleap.scoring.errors import ScoringError
from byteleap.scoring.params import ScoringParams
from byteleap.scoring.records import (
    VERIFIED_WRONG,
    ChallengeRecord,
    FailureReason,
    IpChange,
    LeaseRevenue,
    Verdict,
    WorkerAvailability,
    WorkerKey,
)
from byteleap.scoring.results import MinerScore, ScoreBoard, WorkerScore
from byteleap.scoring.weights import normalise_weights

__all__ = [
    "MAX_THROUGHPUT_FLOPS",
    "VERIFIED_WRONG",
    "ChallengeColumns",
    "ChallengeRecord",
    "ChallengeStats",
    "FailureReason",
    "IpChange",
    "LeaseRevenue",
    "MinerScore",
    "ScoreBoard",
    "ScoringError",
    "ScoringParams",
    "Verdict",
    "WorkerAvailability",
    "WorkerKey",
    "WorkerScore",
    "availability_fractions",
    "bucket_index",
    "challenge_stats",
    "lower_tail_mean",
    "normalise_weights",
    "online_bucket_counts",
    "score_columns",
    "score_network",
]
