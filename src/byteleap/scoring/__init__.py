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

A flagged worker (``flagged``: one identity reported by two workers or two hotkeys, see
``byteleap.protocol.identity``) scores 0 and its lease revenue does not count.

Per miner: challenge_raw = sum of its best K (100) worker scores; challenge = challenge_raw ÷
the best miner's (for display). Lease revenue in the lease window counts only when its worker
passed a challenge between ``lease_challenge_window_min`` (60) before its lease began and the
period's end, and is not flagged (``leases``); R is the network's counted revenue and a miner's
lease = its revenue ÷ R.

**The lease share ramps.** s = min(0.7, R / V), with V (``lease_emission_value``) what the
miners' emission over one lease window is worth in the receipts' currency: 0 with no revenue,
no cliff. A miner's share of the weights is s × lease + (1 − s) × challenge_raw ÷ all miners'
challenge_raw (the shares sum to 1); final = share ÷ the best miner's, so with no revenue final
= challenge as before. Renting one's own worker for x raises one's share by at most x / V: the
weight bought is worth at most what it cost (proof in docs/scoring.md). If no miner has a
challenge score at all, the weights follow lease revenue alone and that bound does not hold.

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
from byteleap.scoring.leases import lease_share
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
    "lease_share",
    "lower_tail_mean",
    "normalise_weights",
    "online_bucket_counts",
    "score_columns",
    "score_network",
]
