"""The SQLite call store: write-behind, round trips, filters (the SQL and the in-memory test agree),
retention, pages, and the files already on users' disks. (What SIGKILL loses:
``tests/system/test_storage.py``.)"""

from __future__ import annotations

import contextlib
import os
import re
import sqlite3
from dataclasses import fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from monitoring.alert_dispatcher import DeliveryResult
from monitoring.call_query import CallCursor, CallFilter, record_bytes
from monitoring.call_store import CallStore
from tests.helpers.files import read_only, rows
from tests.helpers.records import T0, call, make_alert
from vocabulary.records import CallRecord, FeedbackRecord


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


def agreement_records() -> list[CallRecord]:
    """Newest first: e, root-1, c, b, a; with near misses for every filter (a tag "xy" or "X" for
    "x", a user id 7 as a number, an API key id that is null, an instant shared by two records)."""
    t = [T0 + timedelta(seconds=s) for s in range(4)]
    return [
        call("gpt-4o", run_id="a", root_run_id="root-1", request_id="q1", tags=["x"], started_at=t[0],
             metadata={"user_id": "ann", "api_key_id": "k1"}),
        call("gemini", run_id="b", root_run_id="root-2", request_id="q2", alternative="gemini", outcome="error",
             tags=["xy"], metadata={"user_id": "ann"}, started_at=t[1]),
        call("m", run_id="c", root_run_id=None, request_id=None, alternative="gpt-4o", outcome="cancelled",
             tags=[], metadata={"user_id": 7, "api_key_id": None, "note": "x"}, started_at=t[2]),
        call("gpt-4o", run_id="root-1", root_run_id=None, alternative=None, tags=["y", "x"], started_at=t[2],
             metadata={"user_id": "bob", "api_key_id": "k2"}),
        call("m", run_id="e", request_id="q1", outcome="error", tags=["X"], started_at=t[3],
             metadata={"user_id": "7", "api_key_id": "k3"}),
    ]  # fmt: skip


AGREEMENT_CASES = [
    (CallFilter(run_id="root-1"), ["root-1", "a"]),  # its own id, or its root run's
    (CallFilter(request_id="q1"), ["e", "a"]),
    (CallFilter(model="gpt-4o"), ["root-1", "c", "a"]),  # the model, or the alternative's key
    (CallFilter(outcome="error"), ["e", "b"]),
    (CallFilter(tag="x"), ["root-1", "a"]),  # not "xy", "X", nor an "x" in the metadata
    (CallFilter(user_id="7"), ["e", "c"]),  # a number in the metadata is its text
    (CallFilter(owner="7"), ["e"]),  # and made with a key: an api_key_id of null is no key
    (CallFilter(owner="ann"), ["a"]),
    (CallFilter(since=T0 + timedelta(seconds=2)), ["e", "root-1", "c"]),  # the bound included
    (CallFilter(since=datetime(2026, 1, 1, 0, 0, 1)), ["e", "root-1", "c", "b"]),  # no zone: UTC
    (CallFilter(until=T0 + timedelta(seconds=2)), ["b", "a"]),  # the bound left out
    (CallFilter(after=CallCursor((T0 + timedelta(seconds=2)).timestamp(), "root-1")), ["c", "b", "a"]),  # a tie: by id
    (CallFilter(model="gpt-4o", tag="x", owner="bob"), ["root-1"]),  # conditions add up
]


def given(wanted: CallFilter) -> str:
    """The fields ``wanted`` sets, as a test id."""
    return "+".join(f.name for f in fields(wanted) if getattr(wanted, f.name))


def test_every_filter_field_has_an_agreement_case() -> None:
    covered = {name for wanted, _ in AGREEMENT_CASES for name in given(wanted).split("+")}
    assert covered == {f.name for f in fields(CallFilter)}


@pytest.mark.parametrize(("wanted", "expected"), AGREEMENT_CASES, ids=[given(wanted) for wanted, _ in AGREEMENT_CASES])
async def test_the_sql_filter_and_the_in_memory_filter_agree(
    tmp_path: Path, wanted: CallFilter, expected: list[str]
) -> None:
    (tmp_path / "a-file").write_text("")  # the store's folder is a file: every record stays in memory
    in_file, in_memory = store_at(tmp_path / "m.sqlite3"), store_at(tmp_path / "a-file" / "m.sqlite3")
    for record in agreement_records():
        in_file.add(record)
        in_memory.add(record)
    await in_file.flush()

    from_file = [r.run_id for r in (await in_file.page(wanted, limit=100)).records]
    from_memory = [r.run_id for r in (await in_memory.page(wanted, limit=100)).records]
    waiting = in_file.health()["waiting"]["calls"], in_memory.health()["waiting"]["calls"]
    await in_file.close()
    await in_memory.close()

    assert waiting == (0, 5), "one answered from SQL only, the other from memory only"
    assert from_file == expected, "SQL"
    assert from_memory == expected, "in memory"


async def test_alerts_deliveries_and_feedback_read_the_same_from_the_file_and_from_memory(tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("")
    in_file, in_memory = store_at(tmp_path / "m.sqlite3"), store_at(tmp_path / "a-file" / "m.sqlite3")
    alerts = [replace(make_alert(n=n), at=T0 + timedelta(minutes=n)) for n in range(4)]
    deliveries = [DeliveryResult(a.id, a.rule, a.state, "log", n % 2 == 0, n, None, a.at) for n, a in enumerate(alerts)]
    feedback = [FeedbackRecord(f"r{n}", n / 4, "ok", "ann", None, "openai", T0) for n in range(4)]
    for store in (in_file, in_memory):
        for a, d, f in zip(alerts, deliveries, feedback, strict=True):
            store.add_alert(a)
            store.add_delivery(d)
            store.add_feedback(f)
    await in_file.flush()

    answers = []
    for store in (in_file, in_memory):
        latest, since = await store.alerts(limit=2), await store.alerts(since=T0 + timedelta(minutes=1))
        of_two = await store.deliveries(alerts[1].id, alerts[2].id)
        answers.append((latest, since, await store.deliveries(), of_two, await store.feedback(limit=3)))
        await store.close()

    from_file, from_memory = answers
    assert from_file == from_memory
    latest, since, _, of_two, newest_feedback = from_file
    assert [a.id for a in latest] == [alerts[3].id, alerts[2].id]
    assert [a.id for a in since] == [alerts[3].id, alerts[2].id, alerts[1].id]
    assert [(d["alert_id"], d["ok"]) for d in of_two] == [(alerts[1].id, False), (alerts[2].id, True)]
    assert [f["run_id"] for f in newest_feedback] == ["r3", "r2", "r1"]


# The DDL of the files on users' disks, as the store created them before its tables became specs
# (monitoring/record_tables.py): a new file must have the same tables, columns and indexes.
SCHEMA_BEFORE = """
CREATE TABLE IF NOT EXISTS calls (
    run_id TEXT PRIMARY KEY,
    root_run_id TEXT, request_id TEXT, route TEXT, ladder TEXT, rung INTEGER, alternative TEXT,
    provider TEXT NOT NULL, model TEXT NOT NULL,
    started_at TEXT NOT NULL, started_ts REAL NOT NULL, duration_s REAL NOT NULL, first_token_s REAL,
    input_tokens INTEGER NOT NULL, output_tokens INTEGER NOT NULL,
    cached_input_tokens INTEGER NOT NULL, reasoning_tokens INTEGER NOT NULL,
    cost_usd TEXT, outcome TEXT NOT NULL, cause TEXT, error TEXT,
    prompt_chars INTEGER NOT NULL, answer_chars INTEGER NOT NULL,
    tags TEXT NOT NULL, metadata TEXT NOT NULL, user_id TEXT
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_ts);
CREATE INDEX IF NOT EXISTS calls_page ON calls (started_ts, run_id);
CREATE INDEX IF NOT EXISTS calls_request ON calls (request_id);
CREATE INDEX IF NOT EXISTS calls_root ON calls (root_run_id);
CREATE TABLE IF NOT EXISTS alerts (
    id TEXT PRIMARY KEY, rule TEXT NOT NULL, key TEXT NOT NULL, state TEXT NOT NULL,
    severity TEXT NOT NULL, message TEXT NOT NULL, at TEXT NOT NULL, at_ts REAL NOT NULL, labels TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS alerts_at ON alerts (at_ts);
CREATE TABLE IF NOT EXISTS feedback (
    run_id TEXT NOT NULL, score REAL NOT NULL, comment TEXT, user_id TEXT, question_type TEXT, alternative TEXT,
    at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    alert_id TEXT NOT NULL, rule TEXT NOT NULL, state TEXT NOT NULL, sink TEXT NOT NULL,
    ok INTEGER NOT NULL, attempts INTEGER NOT NULL, error TEXT, at TEXT NOT NULL
);
"""


def schema(path: Path) -> dict[str, Any]:
    """A file's tables, their columns (name, type, NOT NULL, default, key), their indexes with the
    columns of each, and every CREATE statement as SQLite keeps it (whitespace aside)."""

    def spaced(sql: str | None) -> str | None:
        return None if sql is None else re.sub(r"\(\s+", "(", re.sub(r"\s+\)", ")", re.sub(r"\s+", " ", sql)))

    with contextlib.closing(sqlite3.connect(path)) as db:
        tables = [t for (t,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        indexes = {
            table: sorted(
                (name, unique, origin, db.execute(f"PRAGMA index_info({name})").fetchall())
                for _, name, unique, origin, _ in db.execute(f"PRAGMA index_list({table})")
            )
            for table in tables
        }
        created = db.execute("SELECT type, name, sql FROM sqlite_master")
        return {
            "columns": {table: db.execute(f"PRAGMA table_info({table})").fetchall() for table in tables},
            "indexes": indexes,
            "sql": sorted((kind, name, spaced(sql)) for kind, name, sql in created),
        }


def file_made_before(path: Path) -> Path:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.executescript(SCHEMA_BEFORE)
    return path


async def test_a_new_file_has_the_schema_of_the_files_already_on_disk(tmp_path: Path) -> None:
    store = store_at(tmp_path / "new.sqlite3")
    await store.flush()
    await store.close()

    made = schema(tmp_path / "new.sqlite3")
    assert made == schema(file_made_before(tmp_path / "before.sqlite3"))
    assert [len(made["columns"][t]) for t in ("calls", "alerts", "deliveries", "feedback")] == [26, 9, 8, 7]


def call_row(run_id: str, at: datetime) -> tuple[object, ...]:
    """A call row as the store wrote it before its tables became specs (the new code must write the same)."""
    return (
        run_id, "root", "q", "chat", "fallback", 0, "openai", "openai", "m", at.isoformat(), at.timestamp(), 1.0, 0.1,
        10, 10, 0, 0, "0.001", "ok", None, None, 100, 100, '["exp", "\\u00e9"]', f'{{"user_id": "u1", "at": "{at}"}}',
        "u1",
    )  # fmt: skip


async def test_a_file_made_with_the_schema_already_on_disk_is_read_and_written(tmp_path: Path) -> None:
    path = file_made_before(tmp_path / "m.sqlite3")
    old_alert = replace(make_alert(n=1), at=T0)
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute(f"INSERT INTO calls VALUES ({', '.join('?' * 26)})", call_row("old", T0))
        db.execute(
            "INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (old_alert.id, "slow_response", old_alert.key, "firing", "warning", old_alert.message, T0.isoformat(),
             T0.timestamp(), '{"model": "gpt-4o-mini", "route": "/chat"}'),
        )  # fmt: skip
        db.execute(
            "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (old_alert.id, "slow_response", "firing", "log", 1, 2, None, T0.isoformat()),
        )
        db.execute(
            "INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("old", 0.5, "fine", "u1", None, "openai", T0.isoformat()),
        )
    before = schema(path)

    def record(run_id: str, at: datetime) -> CallRecord:
        return call(run_id=run_id, started_at=at, tags=["exp", "é"], metadata={"user_id": "u1", "at": at})

    new_at = T0 + timedelta(minutes=1)
    new_alert = replace(make_alert("resolved", n=2), at=new_at)
    store = store_at(path)
    (old,) = await store.find()
    read_before = (await store.alerts(), await store.deliveries(), await store.feedback())
    store.add(record("new", new_at))
    store.add_alert(new_alert)
    store.add_delivery(DeliveryResult(new_alert.id, new_alert.rule, "resolved", "log", False, 5, "HTTP 500", new_at))
    store.add_feedback(FeedbackRecord("new", 1.0, None, None, "fact", None, new_at))
    await store.close()

    reopened = store_at(path)
    read_after = (
        await reopened.find(),
        await reopened.alerts(),
        await reopened.deliveries(),
        await reopened.feedback(),
    )
    await reopened.close()
    with contextlib.closing(sqlite3.connect(path)) as db:
        newest = "SELECT * FROM {} ORDER BY rowid DESC LIMIT 1"
        written = [db.execute(newest.format(t)).fetchone() for t in ("calls", "alerts", "deliveries", "feedback")]

    assert old == replace(record("old", T0), metadata={"user_id": "u1", "at": str(T0)})
    assert read_before == (
        [old_alert],
        [{"alert_id": old_alert.id, "rule": "slow_response", "state": "firing", "sink": "log", "ok": True,
          "attempts": 2, "error": None, "at": T0.isoformat()}],
        [{"run_id": "old", "score": 0.5, "comment": "fine", "user_id": "u1", "question_type": None,
          "alternative": "openai", "at": T0.isoformat()}],
    )  # fmt: skip
    assert schema(path) == before, "the file keeps its tables as they were"
    assert written == [
        call_row("new", new_at),
        (new_alert.id, "slow_response", new_alert.key, "resolved", "warning", new_alert.message, new_at.isoformat(),
         new_at.timestamp(), '{"model": "gpt-4o-mini", "route": "/chat"}'),
        (new_alert.id, "slow_response", "resolved", "log", 0, 5, "HTTP 500", new_at.isoformat()),
        ("new", 1.0, None, None, "fact", None, new_at.isoformat()),
    ]  # fmt: skip
    assert [r.run_id for r in read_after[0]] == ["new", "old"]
    assert [a.id for a in read_after[1]] == [new_alert.id, old_alert.id]
    assert [(d["alert_id"], d["ok"]) for d in read_after[2]] == [(old_alert.id, True), (new_alert.id, False)]
    assert [f["run_id"] for f in read_after[3]] == ["new", "old"]
