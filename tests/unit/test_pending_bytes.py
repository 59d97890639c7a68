"""The records waiting for the SQLite writer are bounded in bytes as well as in count (issue 14):
large ones are dropped and counted like any other overflow, small ones are kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitoring.alert import Alert
from monitoring.call_store import CallStore, WriteReport
from monitoring.pending_writes import BYTES_PER_ITEM, FIXED_BYTES, PendingWrites, estimated_bytes
from tests.helpers.records import T0, call
from vocabulary.records import CallRecord

KB = 1024


def record(n: int, metadata_bytes: int = 0, *, at: datetime = T0) -> CallRecord:
    client = {"note": "x" * metadata_bytes}
    return call(run_id=f"r{n}", started_at=at + timedelta(seconds=n), metadata={"client": client})


def run_ids(pending: PendingWrites) -> list[str]:
    return [r.run_id for r in pending.snapshot().calls]


def test_a_record_larger_than_the_byte_bound_is_dropped_and_counted_small_ones_are_kept() -> None:
    pending = PendingWrites(limit=1000, max_bytes=16 * KB)

    pending.add_call(record(1))
    pending.add_call(record(2, metadata_bytes=64 * KB))
    pending.add_call(record(3))

    assert run_ids(pending) == ["r1", "r3"], "the large one does not push out the small ones before it"
    assert pending.take_dropped() == {"calls": 1}
    assert pending.byte_sizes()["calls"] == estimated_bytes(record(1)) + estimated_bytes(record(3))


def test_past_the_byte_bound_the_oldest_records_are_dropped_first() -> None:
    size = estimated_bytes(record(0, metadata_bytes=4 * KB))
    pending = PendingWrites(limit=1000, max_bytes=3 * size)

    for n in range(5):
        pending.add_call(record(n, metadata_bytes=4 * KB))

    assert run_ids(pending) == ["r2", "r3", "r4"]
    assert pending.take_dropped() == {"calls": 2}
    assert pending.byte_sizes()["calls"] == 3 * size
    assert pending.take_dropped() == {}, "counted once"


def test_a_batch_handed_back_keeps_the_byte_bound_and_the_order() -> None:
    size = estimated_bytes(record(0, metadata_bytes=4 * KB))
    pending = PendingWrites(limit=1000, max_bytes=3 * size)
    pending.add_call(record(1, metadata_bytes=4 * KB))
    pending.add_call(record(2, metadata_bytes=4 * KB))
    failed_write = pending.take()
    assert pending.byte_sizes()["calls"] == 0

    pending.add_call(record(3, metadata_bytes=4 * KB))
    pending.add_call(record(4, metadata_bytes=4 * KB))
    pending.restore(failed_write)

    assert run_ids(pending) == ["r2", "r3", "r4"]
    assert pending.take_dropped() == {"calls": 1}
    assert pending.byte_sizes()["calls"] == 3 * size


def test_each_kind_has_its_own_bounds_and_the_count_bound_still_holds() -> None:
    pending = PendingWrites(limit=2)
    alert = Alert("a1", "slow_response", "slow_response:m", "firing", "warning", "m is slow", T0)

    for n in range(3):
        pending.add_call(record(n))
    pending.add_alert(alert)

    assert pending.max_bytes == 2 * BYTES_PER_ITEM  # no byte bound given: ``limit`` records of ~2 kB
    assert run_ids(pending) == ["r1", "r2"]
    assert pending.sizes() == {"calls": 2, "alerts": 1, "deliveries": 0, "feedback": 0}
    assert pending.take_dropped() == {"calls": 1}
    assert pending.byte_sizes()["alerts"] == estimated_bytes(alert) > FIXED_BYTES


def test_metadata_is_measured_in_utf8_bytes() -> None:
    ascii_size = estimated_bytes(call(metadata={"note": "a" * 1000}))
    korean_size = estimated_bytes(call(metadata={"note": "가" * 1000}))  # three bytes each in UTF-8

    assert korean_size - ascii_size == 2000


async def test_the_store_drops_an_oversized_record_counts_it_and_writes_the_rest(tmp_path: Path) -> None:
    store = CallStore(tmp_path / "m.sqlite3", max_pending=100)  # default byte bound: 100 x 2 kB
    reports: list[WriteReport] = []
    store.listeners.append(reports.append)

    now = datetime.now(UTC)  # within the retention period
    store.add(record(1, at=now))
    store.add(record(2, metadata_bytes=400 * KB, at=now))
    store.add(record(3, at=now))
    await store.flush()
    kept = sorted(r.run_id for r in await store.find())
    await store.close()

    assert kept == ["r1", "r3"]
    assert reports[0].dropped == {"calls": 1}
    assert reports[0].written == 2
