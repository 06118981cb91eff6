"""What a simultaneous challenge batch is credited. Pure.

All of a miner's challenges in a round are issued at one instant t₀, and the validator times
the batch to the reply that carries its last commitment, at t₀ + T. Every challenge that then
passes was computed inside that interval: its seed was secret before t₀, and its commitment,
which the reveal must open, was in by t₀ + T. Hardware of total throughput F does at most F·T
work in T seconds, so crediting each pass at its own work over T gives

    Σ credited = Σ_passed work_i / T ≤ F·T / T = F

whatever order the miner served the batch in, however it interleaved or parked challenges and
whichever it refused. One GPU behind a hundred workers is credited as one GPU (the sliding
window this replaces credited each challenge at its own commit time, which a miner that serves
one at a time controls). The cost falls on honesty only as the spread between a miner's first
and last finish: an honest miner whose challenges are sized to take about the same time on each
of its GPUs (``proof.sizing``) keeps nearly all of its hardware's throughput.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["batch_credit"]


def batch_credit(works: Sequence[float], elapsed_s: float) -> list[float]:
    """Each challenge's credited throughput (flop/s): its work over the batch's time.

    ``works`` are the flops of the challenges that passed; ``elapsed_s`` is from the batch's
    issue to its last commitment, as the validator measured it.
    """
    if not math.isfinite(elapsed_s) or elapsed_s <= 0:
        raise ValueError(f"a batch takes a positive time, got {elapsed_s!r}")
    if any(not math.isfinite(w) or w < 0 for w in works):
        raise ValueError("work must be finite and >= 0")
    return [w / elapsed_s for w in works]
