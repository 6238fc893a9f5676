"""When to try a failed delivery again: the schedule from settings, jitter, Retry-After."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

RETRY_AFTER_CAP_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """`schedule[n-1]` is the wait after the n-th failed attempt; after the last, a dead letter."""

    schedule: tuple[float, ...]
    jitter: float = 0.2  # ±20 %, so channels that failed together do not retry together
    rng: random.Random = field(default_factory=random.Random, compare=False)

    @property
    def max_attempts(self) -> int:
        return len(self.schedule) + 1

    def next_delay(self, attempts_made: int, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when no attempt is left."""
        if attempts_made < 1 or attempts_made > len(self.schedule):
            return None
        scheduled = self.schedule[attempts_made - 1]
        delay = scheduled * self.rng.uniform(1 - self.jitter, 1 + self.jitter)
        if retry_after is not None and retry_after > 0:
            # Teams asked for a wait: take the longer of the two, but never more than an hour.
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP_SECONDS))
        return delay


def channel_pause(retry_after: float | None, schedule: tuple[float, ...]) -> float:
    """How long a throttled (429) channel rests before anything else is sent to it."""
    if retry_after is not None and retry_after > 0:
        return min(retry_after, RETRY_AFTER_CAP_SECONDS)
    return schedule[0] if schedule else 10.0
