"""Weights from final scores: one number per uid, summing to 1.

All-zero (or empty) scores give **no weights** (an empty dict), never NaN and never a uniform
spread: a uniform vector would pay every registered hotkey for doing nothing. The weight loop
reads an empty result as "set nothing this time" and keeps what is on chain.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from byteleap.scoring.errors import ScoringError

__all__ = ["normalise_weights"]


def normalise_weights(scores: Mapping[str, float], uids: Mapping[str, int]) -> dict[int, float]:
    """``{uid: weight}`` for hotkeys with a positive score and a uid, sorted by uid.

    Hotkeys without a uid (deregistered since the round) are dropped before normalising.
    """
    for hotkey, value in scores.items():
        if not math.isfinite(value) or value < 0:
            raise ScoringError(
                f"score of {hotkey} must be finite and >= 0", reason="bad_score", hotkey=hotkey
            )
    kept = {uids[h]: v for h, v in scores.items() if h in uids and v > 0}
    total = math.fsum(kept.values())
    if total <= 0:
        return {}
    return {uid: kept[uid] / total for uid in sorted(kept)}
