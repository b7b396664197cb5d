"""Retries with capped exponential back-off and full jitter."""

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

# Statuses worth retrying: overload/timeout answers and proxies in between.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


@dataclass
class RetryPolicy:
    """How often and how long to retry a failed request.

    Delay before attempt ``n`` (1-based retry count) is a random value in
    ``[0, min(max_delay_s, initial_delay_s * 2**(n-1))]`` (full jitter, so many consumers
    restarting together do not retry in lock-step); a ``Retry-After`` header raises it.
    ``max_attempts`` counts the first attempt; ``None`` retries forever (for feed readers).
    """

    max_attempts: Optional[int] = 5
    initial_delay_s: float = 0.2
    max_delay_s: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    rng: random.Random = field(default_factory=random.Random, repr=False)

    def delay_s(self, retry: int, retry_after_s: Optional[float] = None) -> float:
        ceiling = min(self.max_delay_s, self.initial_delay_s * (2 ** max(0, retry - 1)))
        delay = self.rng.uniform(0, ceiling)
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, self.max_delay_s))
        return delay

    def gives_up_after(self, attempt: int) -> bool:
        return self.max_attempts is not None and attempt >= self.max_attempts
