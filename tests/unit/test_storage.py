"""The SQLite call store: write-behind, round trips, filters, retention, pages. (What SIGKILL
loses: ``tests/system/test_storage.py``.)"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from monitoring.call_query import CallFilter, record_bytes
from monitoring.call_store import CallStore
from tests.helpers.files import read_only, rows
from tests.helpers.records import T0, call
from vocabulary.records import CallRecord


def store_at(path: Path, **options: object) -> CallStore:
    """A store whose clock stands just after the test records, so retention keeps them."""
    return CallStore(path, clock=(T0 + timedelta(days=1)).timestamp, **options)  # type: ignore[arg-type]


async def test_records_round_trip_through_the_file(tmp_path: Path) -> None:
    store = store_at(tmp_path / "m.sqlite3", flush_interval_s=60)
    record = call(
        run_id="r1",
        cost_usd=Decimal("0.000435"),
        tags=["exp", "한국어"],
        metadata={"user_id": "u1", "session_id": "s1"},
        reasoning_tokens=3,
        cached_input_tokens=2,
    )
    store.add(record)

    (found,) = await store.find(run_id="r1")
    await store.close()

    assert found == record


async def test_adding_a_record_does_not_touch_the_disk_until_the_flush(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = store_at(path, flush_interval_s=60)
    await store.flush()  # creates the file and schema

    store.add(call(run_id="r1"))
    before = rows(path)
    await store.flush()
    after = rows(path)
    await store.close()

    assert (before, after) == (0, 1)


async def test_find_filters(tmp_path: Path) -> None:
    store = store_at(tmp_path / "m.sqlite3")
    t0 = T0
    store.add(call("gpt-4o", run_id="a", root_run_id="root-1", tags=["x"], metadata={"user_id": "ann"}, started_at=t0))
    store.add(
        call(
            "gemini",
            run_id="b",
            alternative="gemini",
            outcome="error",
            cause="timeout",
            started_at=t0 + timedelta(minutes=1),
        )
    )
    store.add(call("gpt-4o", run_id="c", tags=["y"], metadata={"user_id": "bob"}, started_at=t0 + timedelta(minutes=2)))

    async def ids(**filters: object) -> list[str]:
        return [r.run_id for r in await store.find(**filters)]  # type: ignore[arg-type]

    assert await ids() == ["c", "b", "a"]
    assert await ids(model="gpt-4o") == ["c", "a"]
    assert await ids(model="gemini") == ["b"]  # the alternative key works too
    assert await ids(outcome="error") == ["b"]
    assert await ids(tag="x") == ["a"]
    assert await ids(user_id="bob") == ["c"]
    assert await ids(run_id="root-1") == ["a"]
    assert await ids(since=t0 + timedelta(seconds=30), until=t0 + timedelta(seconds=90)) == ["b"]
    assert await ids(limit=1) == ["c"]
    await store.close()


async def test_old_records_are_deleted_after_the_retention_period(tmp_path: Path) -> None:
    now = datetime(2026, 5, 10, tzinfo=UTC)
    store = CallStore(tmp_path / "m.sqlite3", retention_days=7, clock=now.timestamp)
    store.add(call(run_id="old", started_at=now - timedelta(days=8)))
    store.add(call(run_id="new", started_at=now - timedelta(days=1)))

    await store.flush()
    kept = [r.run_id for r in await store.find()]
    await store.close()

    assert kept == ["new"]


async def test_a_failed_write_keeps_the_records_for_the_next_flush(tmp_path: Path) -> None:
    path = tmp_path / "m.sqlite3"
    store = store_at(path)
    await store.flush()
    os.chmod(path, 0o444)
    store.add(call(run_id="r1"))
    try:
        failed = False
        try:
            await store.flush()
        except sqlite3.OperationalError:
            failed = True
    finally:
        os.chmod(path, 0o644)
    await store.close()  # flushes again, now writable

    reopened = store_at(path)
    kept = [r.run_id for r in await reopened.find()]
    await reopened.close()
    assert failed or os.geteuid() == 0  # root ignores file modes; the test still checks nothing was lost
    assert kept == ["r1"]


def paging_records() -> list[CallRecord]:
    """Seven records, newest first as a page runs: three share one instant (the run id orders them)."""
    instants = [T0 + timedelta(seconds=s) for s in (9, 7, 5, 5, 5, 3, 1)]
    ids = ["g", "f", "e3", "e2", "e1", "b", "a"]
    keyed = {"user_id": "ann", "api_key_id": "k1"}
    metadata = [keyed, {"user_id": "ann"}, keyed, {"user_id": "bob", "api_key_id": "k2"}, keyed, keyed, keyed]
    return [call(run_id=r, started_at=t, metadata=m) for r, t, m in zip(ids, instants, metadata, strict=True)]


async def every_page(store: CallStore, wanted: CallFilter | None = None, **options: Any) -> list[list[str]]:
    """The run ids of each page, following ``next`` until it is None."""
    pages: list[list[str]] = []
    wanted = wanted or CallFilter()
    while True:
        page = await store.page(wanted, **options)
        pages.append([r.run_id for r in page.records])
        if page.next is None:
            return pages
        wanted = replace(wanted, after=page.next)


async def test_pages_run_newest_first_from_the_file_and_from_memory_alike(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")  # the store's folder is a file: nothing can be written
    in_file, in_memory = store_at(tmp_path / "m.sqlite3"), store_at(tmp_path / "a-file" / "m.sqlite3")
    newest_first = paging_records()
    for record in reversed(newest_first):
        in_file.add(record)
        in_memory.add(record)
    await in_file.flush()
    two_fit = record_bytes(newest_first[0]) * 5 // 2

    for store in (in_file, in_memory):
        assert await every_page(store, limit=3) == [["g", "f", "e3"], ["e2", "e1", "b"], ["a"]]
        assert await every_page(store, limit=1000, max_bytes=two_fit) == [["g", "f"], ["e3", "e2"], ["e1", "b"], ["a"]]
        assert await every_page(store, limit=5, max_bytes=10) == [[r.run_id] for r in newest_first], "one at least"
        assert await every_page(store, CallFilter(owner="ann"), limit=2) == [["g", "e3"], ["e1", "b"], ["a"]]
    assert in_memory.health()["waiting"]["calls"] == 7 and rows(tmp_path / "m.sqlite3") == 7
    await in_file.close()
    await in_memory.close()


async def test_pages_merge_the_file_and_what_waits_to_be_written_each_record_once(tmp_path: Path) -> None:
    path = tmp_path / "monitoring" / "m.sqlite3"
    store = store_at(path)
    newest_first = paging_records()
    for record in newest_first[::2]:  # g, e3, e1, a in the file
        store.add(record)
    await store.flush()

    with read_only(path):  # f, e2, b wait in memory, between them
        for record in newest_first[1::2]:
            store.add(record)
        with contextlib.suppress(sqlite3.OperationalError):
            await store.flush()
        waiting = store.health()["waiting"]["calls"]
        by_three = await every_page(store, limit=3)
        by_bytes = await every_page(store, limit=1000, max_bytes=record_bytes(newest_first[0]) * 5 // 2)
        by_one = await every_page(store, limit=1)
    await store.close()

    assert waiting == 3
    assert by_three == [["g", "f", "e3"], ["e2", "e1", "b"], ["a"]]
    assert by_bytes == [["g", "f"], ["e3", "e2"], ["e1", "b"], ["a"]]
    assert by_one == [[r.run_id] for r in newest_first]
