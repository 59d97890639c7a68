"""``RetryPolicy``: which failed attempts are worth trying again on the same rung, and when.

Only transient causes are retried (``Cause.is_transient``: rate limited, server error,
connection), with exponential backoff and "equal" jitter (each wait between half the backoff and
all of it: replicas spread out, yet a provider that just said 503 gets time to recover), never
sooner than a provider's ``Retry-After``. A wait that would pass the request's deadline, or a
``Retry-After`` longer than ``max_retry_after_s``, is not waited for: the ladder fails over to the
next rung instead, which is what a ladder is for.

The loop itself lives in the ladder (a stream can be retried only before its first chunk, which
tenacity's attempt manager cannot see across a ``yield``); this module only decides.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from errors import Cause


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 2  # tries per rung, the first included
    base_s: float = 0.5  # first backoff; doubles each retry
    max_backoff_s: float = 2.0
    max_retry_after_s: float = 5.0
    jitter: Callable[[], float] = field(default=random.random, compare=False)  # 0..1

    def wait_before_retry(
        self, cause: Cause, tries: int, retry_after: float | None, time_left: float | None
    ) -> float | None:
        """Seconds to wait before try number ``tries + 1``, or None to move to the next rung."""
        if not cause.is_transient or tries >= self.attempts:
            return None
        if retry_after is not None and retry_after > self.max_retry_after_s:
            return None
        ceiling = min(self.max_backoff_s, self.base_s * 2 ** (tries - 1))
        backoff = ceiling * (0.5 + 0.5 * self.jitter())
        wait = max(backoff, retry_after or 0.0)
        if time_left is not None and wait >= time_left:
            return None
        return wait
