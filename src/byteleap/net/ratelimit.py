"""Per-caller token buckets: pure, clock injected."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate_per_s: float
    burst: float
    tokens: float
    updated_at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.updated_at) * self.rate_per_s)
        self.updated_at = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass
class RateLimiter:
    """Allows ``burst`` requests at once and ``rate_per_s`` sustained, per key."""

    rate_per_s: float
    burst: float
    clock: Callable[[], float] = time.monotonic
    max_keys: int = 100_000
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def allow(self, key: str) -> bool:
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                # Full buckets carry no state worth keeping; drop them first.
                self._buckets = {
                    k: b for k, b in self._buckets.items() if b.tokens < b.burst - 1e-9
                }
            bucket = TokenBucket(self.rate_per_s, self.burst, self.burst, now)
            self._buckets[key] = bucket
        return bucket.take(now)
