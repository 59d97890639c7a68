"""A request's waits for its providers (``resilience.provider_wait``): the union of the waiting
intervals, so calls that wait at the same time are counted once; on a fake clock."""

from __future__ import annotations

from resilience.provider_wait import ProviderWait, provider_wait_scope, waiting
from tests.helpers.clock import FakeClock


def test_waits_one_after_another_add_up_and_overlapping_ones_count_once() -> None:
    clock = FakeClock(100.0)
    tally = ProviderWait(clock)
    with provider_wait_scope(tally):
        with waiting():
            clock.now += 2  # one call waits 2 s
        clock.now += 1  # the server's own second
        with waiting():
            clock.now += 1
            with waiting():  # a second call waits meanwhile: 3 s of waiting, not 1 + 3 + 2
                clock.now += 2
            clock.now += 1
        assert tally.seconds() == 2 + 4


def test_a_wait_in_progress_counts_up_to_now_and_nothing_counts_outside_a_scope() -> None:
    clock = FakeClock(0.0)
    tally = ProviderWait(clock)
    with waiting():  # no scope: no tally to count on
        clock.now += 5
    with provider_wait_scope(tally), waiting():
        clock.now += 1.5
        assert tally.seconds() == 1.5
