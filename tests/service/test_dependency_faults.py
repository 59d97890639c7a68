"""Dependency faults: the SQLite file full or read-only, a webhook receiver that hangs. Requests are
served throughout, the fault is alerted, and nothing already recorded is lost. (Redis killed
mid-run: ``test_shared_state.py``.)

The faults are real, made the way they happen in production: a full disk is a small tmpfs filled
to the last byte, so SQLite itself answers SQLITE_FULL; a read-only file is ``chattr +i`` on the
file, its WAL and its folder, so the kernel refuses writes through the connection already open,
as on a volume turned read-only. File modes would not do: these tests run as root (here and in
CI), and root ignores them. Both need root's capabilities; without them the tests are skipped.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import re
import sqlite3
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from monitoring.alert_dispatcher import AlertDispatcher, DeliveryResult
from monitoring.alert_sinks import WebhookSink
from monitoring.call_store import CallStore, WriteReport
from tests.helpers.apps import AppFactory, settings_for
from tests.helpers.files import first_line, read_only
from tests.helpers.mail import MailBox
from tests.helpers.provider_double import Behaviour, ProviderDouble
from tests.helpers.receivers import HttpReceiver
from tests.helpers.records import call, make_alert
from vocabulary.records import FeedbackRecord
from wiring.monitoring import Monitoring

QUESTION = {"input": {"question": "What is DNS?"}}


@contextmanager
def small_disk(folder: Path, size: str = "1m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``folder``."""
    folder.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"a full disk is a small tmpfs; mounting one failed: {first_line(mounted.stderr)}")
    try:
        yield folder
    finally:  # lazily: the app's connection may still hold the file until its fixture closes it
        subprocess.run(["umount", "--lazy", str(folder)], check=True)


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left; delete it to make room again."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, bytes(4096))
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def on_disk(db: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows read by a connection of our own, read-only, as an operator would look."""
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute(sql).fetchall()


def intact(db: Path) -> bool:
    return on_disk(db, "PRAGMA integrity_check") == [("ok",)]


async def until(check: Callable[[], bool], what: str, timeout_s: float = 10) -> None:
    """Poll ``check`` while this event loop runs the deliveries it waits for."""
    async with asyncio.timeout(timeout_s):
        while not check():
            await asyncio.sleep(0.02)
    assert check(), what


def firing(suite: Monitoring, key: str) -> list[dict[str, Any]]:
    return [alert for alert in suite.engine.firing() if alert["key"] == key]


def metric(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def now_call(run_id: str) -> Any:
    return call(run_id=run_id, request_id=run_id, started_at=datetime.now(UTC))  # recent: retention keeps it


def feedback(run_id: str) -> FeedbackRecord:
    return FeedbackRecord(run_id, 1.0, "good", "ann", "factual", "openai", datetime.now(UTC))


@pytest.fixture
async def client(make_app: AppFactory) -> AsyncIterator[Callable[[FastAPI], httpx.AsyncClient]]:
    clients: list[httpx.AsyncClient] = []

    def connect(app: FastAPI) -> httpx.AsyncClient:
        clients.append(httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://server"))
        return clients[-1]

    yield connect
    for http in clients:
        await http.aclose()


async def test_a_full_disk_keeps_requests_served_and_records_waiting_until_there_is_room(
    double: ProviderDouble, make_app: AppFactory, client: Callable[[FastAPI], httpx.AsyncClient], tmp_path: Path
) -> None:
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "monitoring.sqlite3"
        app = make_app(settings_for(double, monitoring_db_path=db))
        suite: Monitoring = app.state.monitoring
        http = client(app)
        first = await http.post("/chat/invoke", json=QUESTION)
        await suite.store.flush()
        filler = fill(disk)

        during = [await http.post("/chat/invoke", json=QUESTION) for _ in range(2)]
        verdict = {"run_id": during[0].json()["metadata"]["run_id"], "score": 1.0}
        rated = await http.post("/feedback", json=verdict)
        for _ in range(2):  # retried, like the writer does: no try may leave a half-written batch behind
            with pytest.raises(sqlite3.OperationalError, match="database or disk is full"):
                await suite.store.flush()
        calls = await http.get("/monitoring/calls")
        alerts = (await http.get("/monitoring/alerts")).json()
        metrics = (await http.get("/metrics")).text
        health = (await http.get("/health")).json()

        filler.unlink()
        await suite.store.flush()
        health_after = (await http.get("/health")).json()
        stored = on_disk(db, "SELECT request_id FROM calls")
        ratings = on_disk(db, "SELECT run_id FROM feedback")
        after = (await http.get("/monitoring/alerts")).json()
        metrics_after = (await http.get("/metrics")).text
        sound = intact(db)

    served = [first, *during]
    assert [r.status_code for r in served] == [200, 200, 200] and rated.status_code == 200
    assert calls.status_code == 200, "reads answer from the file and from what waits"
    ids = {r.headers["x-request-id"] for r in served}
    assert {c["request_id"] for c in calls.json()["calls"]} == ids
    [storage] = [a for a in alerts["firing"] if a["key"] == "storage:writes"]
    assert storage["severity"] == "critical"
    assert storage["message"].startswith(f"cannot write monitoring records to {db}: database or disk is full")
    assert re.search(r"; \d records waiting in memory \(at most 20000 of each kind\)", storage["message"])
    assert metric(metrics, 'monitoring_records_waiting{kind="calls"}') == 2
    assert (metric(metrics, 'monitoring_write_failures_total{error="SQLITE_FULL"}') or 0) >= 2  # and the writer's
    assert metric(metrics, 'alerts_firing{rule="storage"}') == 1
    assert health["status"] == "degraded" and health["monitoring_storage"]["waiting"]["calls"] == 2
    assert "database or disk is full" in health["monitoring_storage"]["error"]
    assert (health_after["status"], health_after["monitoring_storage"]["writable"]) == ("ok", True)
    # Once there is room, everything that waited is in the file, once, next to what was there.
    assert sorted(row[0] for row in stored) == sorted(ids)
    assert ratings == [(verdict["run_id"],)]
    assert sound
    assert "storage" not in {a["rule"] for a in after["firing"]}
    assert ("storage", "resolved") in {(a["rule"], a["state"]) for a in after["history"]}
    assert metric(metrics_after, 'monitoring_records_waiting{kind="calls"}') == 0
    assert metric(metrics_after, 'alerts_firing{rule="storage"}') == 0


async def test_a_read_only_file_keeps_what_it_holds_and_takes_what_waited_when_writable(tmp_path: Path) -> None:
    db = tmp_path / "monitoring" / "monitoring.sqlite3"
    suite = Monitoring(settings_for(None, monitoring_db_path=db))
    suite.store.add(now_call("kept"))
    await suite.store.flush()

    with read_only(db):
        suite.store.add(now_call("waiting"))
        suite.store.add_feedback(feedback("kept"))
        for _ in range(2):
            with pytest.raises(sqlite3.OperationalError):
                await suite.store.flush()
        [alert] = firing(suite, "storage:writes")
        found = [r.run_id for r in await suite.store.find()]
    await suite.store.flush()
    stored = on_disk(db, "SELECT run_id FROM calls ORDER BY run_id")
    ratings = on_disk(db, "SELECT run_id FROM feedback")
    resolved = firing(suite, "storage:writes")
    await suite.close()

    assert alert["message"].startswith(f"cannot write monitoring records to {db}: disk I/O error")
    assert found == ["waiting", "kept"], "the file is still read, and what waits is included"
    assert stored == [("kept",), ("waiting",)]
    assert ratings == [("kept",)]
    assert resolved == []
    assert intact(db)


async def test_a_file_opened_read_only_is_reopened_for_writing_once_it_is_writable(tmp_path: Path) -> None:
    db = tmp_path / "monitoring" / "monitoring.sqlite3"
    earlier = CallStore(db)
    earlier.add(now_call("kept"))
    await earlier.close()
    # Another worker keeps the file open (and so its -wal and -shm in place): a process starting
    # now gets the read-only file opened, read-only, where it would otherwise get no file at all.
    other_worker = sqlite3.connect(db)
    other_worker.execute("SELECT count(*) FROM calls").fetchall()
    store = CallStore(db)
    reports: list[WriteReport] = []
    store.listeners.append(reports.append)
    try:
        with read_only(db):
            store.add(now_call("waiting"))
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                await store.flush()
            found = [r.run_id for r in await store.find()]  # opens the file again, read-only
        await store.flush()
        recovered = reports[-1]
        stored = on_disk(db, "SELECT run_id FROM calls ORDER BY run_id")
        await store.close()
    finally:
        other_worker.close()

    assert reports[0].error == "attempt to write a readonly database (SQLITE_READONLY)"
    assert found == ["waiting", "kept"]
    assert recovered.ok and recovered.written == 1
    assert stored == [("kept",), ("waiting",)]


async def test_a_server_started_on_a_read_only_file_serves_and_writes_once_it_can(
    double: ProviderDouble, make_app: AppFactory, client: Callable[[FastAPI], httpx.AsyncClient], tmp_path: Path
) -> None:
    db = tmp_path / "monitoring" / "monitoring.sqlite3"
    earlier = CallStore(db)
    earlier.add(now_call("from-the-last-run"))
    await earlier.close()

    with read_only(db):
        app = make_app(settings_for(double, monitoring_db_path=db))
        suite: Monitoring = app.state.monitoring
        await suite.start()  # what the lifespan does; it must not raise
        [alert] = firing(suite, "storage:writes")
        http = client(app)
        answer = await http.post("/chat/invoke", json=QUESTION)
        during = await http.get("/monitoring/calls")
    await suite.store.flush()
    after = await http.get("/monitoring/calls")

    assert "unable to open database file (SQLITE_CANTOPEN)" in alert["message"]
    assert answer.status_code == 200
    request_id = answer.headers["x-request-id"]
    assert during.status_code == 200
    assert [c["request_id"] for c in during.json()["calls"]] == [request_id], "from memory: the file is unreadable"
    assert {c["request_id"] for c in after.json()["calls"]} == {request_id, "from-the-last-run"}
    assert firing(suite, "storage:writes") == []
    assert intact(db)


async def test_waiting_records_are_bounded_and_what_is_dropped_is_counted_and_alerted(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        db = disk / "monitoring.sqlite3"
        suite = Monitoring(settings_for(None, monitoring_db_path=db, monitoring_max_pending=100))
        await suite.store.flush()
        filler = fill(disk)
        for n in range(105):
            suite.store.add(now_call(f"r{n:03}"))
        with pytest.raises(sqlite3.OperationalError):
            await suite.store.flush()
        [dropped] = firing(suite, "storage:dropped")
        metrics = suite.metrics.render().decode()

        filler.unlink()
        await suite.store.flush()
        stored = on_disk(db, "SELECT run_id FROM calls ORDER BY run_id")
        history = await suite.store.alerts()
        await suite.close()

    assert dropped["message"].startswith("5 monitoring records dropped: more than 100 of a kind waited")
    assert "LLM_SERVER_MONITORING_MAX_PENDING" in dropped["message"]
    assert metric(metrics, 'monitoring_records_dropped_total{kind="calls"}') == 5
    assert metric(metrics, 'monitoring_records_waiting{kind="calls"}') == 100
    assert [row[0] for row in stored] == [f"r{n:03}" for n in range(5, 105)], "the oldest went first"
    [resolved] = [a for a in history if a.key == "storage:dropped" and a.state == "resolved"]
    assert resolved.message.endswith("5 records were dropped while it failed")


@pytest.fixture
def hanging_webhook(receiver: HttpReceiver) -> Iterator[HttpReceiver]:
    """The receiver, answering nothing on /hook (the connection stays open) until the test ends."""
    receiver.hang.add("/hook")
    yield receiver
    receiver.reset()  # releases what still hangs, so the app's deliveries can drain


def alerting_settings(double: ProviderDouble, receiver: HttpReceiver, smtp_port: int, **overrides: Any) -> Any:
    # A question with "broken" in it fails on gpt-4o-mini (llm_error), and the local model answers
    # (fallback_used); the next question resolves both.
    double.set("gpt-4o-mini", Behaviour(fail_status=503, fail_when=lambda question: "broken" in question))
    return settings_for(
        double,
        alert_webhook_url=f"{receiver.url}/hook",
        alert_smtp_host="127.0.0.1",
        alert_smtp_port=smtp_port,
        alert_email_to=["oncall@example.test"],
        **overrides,
    )


def subjects(box: MailBox) -> list[str]:
    return [str(message["Subject"]) for message in box.messages]


async def test_a_hanging_webhook_holds_up_neither_requests_nor_the_email_of_later_alerts(
    double: ProviderDouble,
    make_app: AppFactory,
    client: Callable[[FastAPI], httpx.AsyncClient],
    hanging_webhook: HttpReceiver,
    mailbox: MailBox,
    smtp_server: tuple[MailBox, int],
) -> None:
    settings = alerting_settings(
        double, hanging_webhook, smtp_server[1], alert_delivery_timeout_s=60, alert_delivery_attempts=1
    )
    app = make_app(settings)
    http = client(app)

    broken = await http.post("/chat/invoke", json={"input": {"question": "Is it broken?"}})
    await until(lambda: len(hanging_webhook.on("/hook")) == 1, "the first alert reached the webhook")
    fixed = await http.post("/chat/invoke", json=QUESTION)
    expected = ["[WARNING] llm_error", "[WARNING] fallback_used", "[RESOLVED] llm_error", "[RESOLVED] fallback_used"]
    await until(
        lambda: all(any(s.startswith(e) for s in subjects(mailbox)) for e in expected),
        "every alert was emailed",
    )

    assert (broken.status_code, fixed.status_code) == (200, 200)
    assert broken.headers["x-served-by"] == "SmolLM2-135M-Instruct" and fixed.headers["x-served-by"] == "gpt-4o-mini"
    assert len(hanging_webhook.on("/hook")) == 1, "the webhook still holds the first alert; the others wait for it"


async def test_a_hanging_webhook_times_out_and_its_failed_delivery_is_recorded_counted_and_emailed(
    double: ProviderDouble,
    make_app: AppFactory,
    client: Callable[[FastAPI], httpx.AsyncClient],
    hanging_webhook: HttpReceiver,
    mailbox: MailBox,
    smtp_server: tuple[MailBox, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = alerting_settings(
        double, hanging_webhook, smtp_server[1], alert_delivery_timeout_s=0.2, alert_delivery_attempts=2
    )
    app = make_app(settings)
    http = client(app)

    with caplog.at_level(logging.WARNING, logger="llm_server.alerts"):
        broken = await http.post("/chat/invoke", json={"input": {"question": "Is it broken?"}})
        await until(
            lambda: any("alert_delivery: alerts to webhook are not getting through" in s for s in subjects(mailbox)),
            "the failing webhook was reported by email",
        )
    history = (await http.get("/monitoring/alerts")).json()["history"]
    metrics = (await http.get("/metrics")).text

    assert broken.status_code == 200
    [llm_error] = [a for a in history if a["rule"] == "llm_error"]
    outcomes = {d["sink"]: (d["ok"], d["attempts"], d["error"]) for d in llm_error["deliveries"]}
    assert outcomes["webhook"] == (False, 2, "TimeoutError: no answer within 0.2 s")
    assert outcomes["email"] == (True, 1, None) and outcomes["log"] == (True, 1, None)
    assert len(hanging_webhook.on("/hook")) >= 2, "retried"
    assert f"alert {llm_error['id']} to webhook failed after 2 attempts" in caplog.text
    assert (metric(metrics, 'alert_deliveries_total{outcome="failed",sink="webhook"}') or 0) >= 1
    assert "alert_delivery" in {a["rule"] for a in (await http.get("/monitoring/alerts")).json()["firing"]}


async def test_a_refusal_is_not_retried_but_rate_limiting_is(receiver: HttpReceiver) -> None:
    receiver.fail_first["/gone"] = (10, 404)
    receiver.fail_first["/busy"] = (1, 429)
    results: list[DeliveryResult] = []

    async def no_wait(seconds: float) -> None:
        pass

    async with httpx.AsyncClient(timeout=5) as http:
        gone, busy = WebhookSink(f"{receiver.url}/gone", http), WebhookSink(f"{receiver.url}/busy", http)
        busy.name = "busy"
        dispatcher = AlertDispatcher([gone, busy], attempts=3, on_delivery=results.append, sleep=no_wait)
        dispatcher.submit(make_alert())
        await dispatcher.close()

    outcome = {r.sink: (r.ok, r.attempts, r.error) for r in results}
    assert outcome == {"webhook": (False, 1, "HTTP 404 Not Found"), "busy": (True, 2, None)}
