"""When a failed delivery is tried again, or given up (pure): exponential backoff, full jitter."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeliveryRetry:
    """Attempt n (1-based) that failed waits `base * 2**(n-1)` capped at `max`, jittered to
    between half and all of it; after `max_attempts` failures the delivery is dead."""

    base_ms: int
    max_ms: int
    max_attempts: int

    def next_delay_ms(self, attempts: int, rand: random.Random | None = None) -> int | None:
        """The wait before the next try after `attempts` failures, or None: give up."""
        if attempts >= self.max_attempts:
            return None
        ceiling = min(self.max_ms, self.base_ms * 2 ** min(attempts - 1, 40))
        draw = (rand or random).random()
        return int(ceiling / 2 + draw * ceiling / 2)
