"""Errors raised by the pure scoring package.

One base, under the project root:

    ByteleapError
     └── ScoringError          bad input handed to scoring (reason names which rule)
"""

from __future__ import annotations

from byteleap.errors import ByteleapError

__all__ = ["ScoringError"]


class ScoringError(ByteleapError):
    """Scoring was handed input it cannot score (negative throughput, unknown worker …)."""

    reason = "scoring_error"
