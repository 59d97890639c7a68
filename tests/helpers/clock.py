"""A clock a test moves by hand: pass it where the code takes ``clock: Callable[[], float]``."""

from __future__ import annotations


class FakeClock:
    """Reads ``now``, which the test sets or advances; nothing moves it but the test."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
