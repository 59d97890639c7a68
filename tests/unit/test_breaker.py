"""CircuitBreaker states and transitions, on a fixed clock."""

from __future__ import annotations

from resilience.breaker import BreakerBoard, BreakerChange, BreakerPolicy, BreakerState, CircuitBreaker
from tests.helpers.clock import FakeClock

POLICY = BreakerPolicy(consecutive_failures=3, failure_ratio=0.5, window_s=60, min_calls=6, open_s=30)


def breaker(clock: FakeClock, changes: list[BreakerChange] | None = None) -> CircuitBreaker:
    return CircuitBreaker(
        "openai:gpt-4o-mini", POLICY, clock=clock, on_change=None if changes is None else changes.append
    )


def opened(clock: FakeClock, changes: list[BreakerChange] | None = None) -> CircuitBreaker:
    b = breaker(clock, changes)
    for _ in range(POLICY.consecutive_failures):
        b.record_failure("server_error")
    return b


def test_opens_after_failures_in_a_row_and_skips_until_open_s_passes() -> None:
    clock = FakeClock(1000.0)
    b = breaker(clock)
    for _ in range(2):
        b.record_failure("server_error")
    assert b.state is BreakerState.CLOSED and b.allow()
    b.record_failure("server_error")
    assert b.state is BreakerState.OPEN
    assert not b.allow()
    clock.now += 29.9
    assert not b.allow()
    assert abs(b.retry_in() - 0.1) < 1e-9


def test_a_success_resets_the_run_of_failures() -> None:
    b = breaker(FakeClock(1000.0))
    for _ in range(2):
        b.record_failure("timeout")
    b.record_success()
    for _ in range(2):
        b.record_failure("timeout")
    assert b.state is BreakerState.CLOSED


def test_opens_on_the_failure_ratio_once_the_window_has_enough_calls() -> None:
    clock = FakeClock(1000.0)
    b = breaker(clock)
    for failed in (True, False, True, False, True):  # 3 of 5, but fewer than min_calls
        if failed:
            b.record_failure("server_error")
        else:
            b.record_success()
    assert b.state is BreakerState.CLOSED
    b.record_success()  # 3 of 6: ratio 0.5 reached, but on a success
    assert b.state is BreakerState.CLOSED
    b.record_failure("server_error")  # 4 of 7
    assert b.state is BreakerState.OPEN


def test_old_calls_leave_the_window() -> None:
    clock = FakeClock(1000.0)
    b = breaker(clock)
    for _ in range(5):
        b.record_success()
        b.record_failure("server_error")
        b.record_success()
    clock.now += 61  # all of those are out of the window now
    b.record_failure("server_error")
    assert b.snapshot()["window_calls"] == 1
    assert b.state is BreakerState.CLOSED


def test_half_open_lets_one_probe_through_and_closes_on_its_success() -> None:
    clock = FakeClock(1000.0)
    changes: list[BreakerChange] = []
    b = opened(clock, changes)
    clock.now += 30
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()
    assert not b.allow(), "only one probe at a time"
    b.record_success()
    assert b.state is BreakerState.CLOSED
    assert [(c.old, c.new) for c in changes] == [
        (BreakerState.CLOSED, BreakerState.OPEN),
        (BreakerState.OPEN, BreakerState.HALF_OPEN),
        (BreakerState.HALF_OPEN, BreakerState.CLOSED),
    ]


def test_a_failed_probe_opens_the_breaker_again_for_another_open_s() -> None:
    clock = FakeClock(1000.0)
    b = opened(clock)
    clock.now += 30
    assert b.allow()
    b.record_failure("timeout")
    assert b.state is BreakerState.OPEN
    assert b.retry_in() == POLICY.open_s


def test_a_released_probe_frees_its_slot() -> None:
    clock = FakeClock(1000.0)
    b = opened(clock)
    clock.now += 30
    assert b.allow()
    b.release()  # the probe's client went away: no verdict
    assert b.state is BreakerState.HALF_OPEN
    assert b.allow()


def test_the_board_keeps_one_breaker_per_endpoint_and_reports_changes() -> None:
    changes: list[BreakerChange] = []
    board = BreakerBoard(POLICY, clock=FakeClock(1000.0), listeners=[changes.append])
    assert board.get("openai:gpt-4o") is board.get("openai:gpt-4o")
    for _ in range(3):
        board.get("openai:gpt-4o").record_failure("server_error")
    snapshot = {b["endpoint"]: b["state"] for b in board.snapshot()}
    assert snapshot == {"openai:gpt-4o": "open"}
    assert [c.endpoint for c in changes] == ["openai:gpt-4o"]


def test_failures_that_end_first_among_concurrent_calls_are_not_in_a_row() -> None:
    b = breaker(FakeClock(1000.0))
    calls = [b.begin() for _ in range(20)]  # a burst; calls 3, 9 and 15 fail, and fail fast
    for call in (3, 9, 15):
        b.record_failure("server_error", calls[call])
    assert b.state is BreakerState.CLOSED, "three failures ended in a row, but they did not start in a row"
    for call in calls:
        if call not in (3, 9, 15):
            b.record_success(call)
    assert b.snapshot()["failures_in_a_row"] == 0


def test_calls_that_started_one_after_the_other_and_all_failed_open_it_whatever_order_they_end_in() -> None:
    b = breaker(FakeClock(1000.0))
    ok, first, second, third = (b.begin() for _ in range(4))
    b.record_success(ok)
    b.record_failure("timeout", third)
    b.record_failure("timeout", first)
    assert b.state is BreakerState.CLOSED, "the call between them is still in flight"
    b.record_failure("timeout", second)
    assert b.state is BreakerState.OPEN


def test_the_failure_ratio_counts_calls_still_in_flight_as_not_failed() -> None:
    b = breaker(FakeClock(1000.0))
    calls = [b.begin() for _ in range(12)]

    def end(*numbers: int) -> None:  # even numbers fail, odd ones answer
        for n in numbers:
            if n % 2 == 0:
                b.record_failure("server_error", calls[n])
            else:
                b.record_success(calls[n])

    end(0, 1, 2, 3, 5, 4)  # 3 of the 6 that ended failed (the ratio), but 6 are still in flight
    assert b.state is BreakerState.CLOSED
    end(6, 7, 8, 9, 10)  # 6 of the 11 that ended, and 1 in flight: 6 of 12
    assert b.state is BreakerState.OPEN
    assert b.last_reason == "6 of the last 11 calls failed, the last server_error"


def test_a_released_call_leaves_the_flight_and_breaks_a_run() -> None:
    b = breaker(FakeClock(1000.0))
    first, released, second, third = (b.begin() for _ in range(4))
    b.release(released)
    for call in (first, second, third):
        b.record_failure("server_error", call)
    assert b.state is BreakerState.CLOSED, "a call with no verdict sits between the first and the second"
    b.record_failure("server_error", b.begin())
    assert b.state is BreakerState.OPEN
