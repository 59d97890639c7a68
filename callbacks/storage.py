"""``CallStore``: call records, alerts, alert deliveries and feedback in a SQLite file (WAL).

Writes never happen on the request path: ``add`` only appends to a list, and a background task
writes everything pending in one transaction every ``flush_interval_s``. That interval is the
durability bound: a process killed with SIGKILL loses at most the records of the last interval
(plus the one transaction in flight). Reads flush first, so the API always sees every record
that finished before the read. The pending lists are guarded by a lock because sync chain
invocations may report from worker threads; all SQLite access goes through one aiosqlite
connection, serialized by an asyncio lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiosqlite

from callbacks.alert_model import Alert
from callbacks.dispatch import DeliveryResult
from callbacks.records import CallRecord, FeedbackRecord

logger = logging.getLogger("llm_server.storage")

_SCHEMA = """
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

_CALL_COLUMNS = (
    "run_id, root_run_id, request_id, route, ladder, rung, alternative, provider, model, started_at, started_ts, "
    "duration_s, first_token_s, input_tokens, output_tokens, cached_input_tokens, reasoning_tokens, cost_usd, "
    "outcome, cause, error, prompt_chars, answer_chars, tags, metadata, user_id"
)
_HOUR_S = 3600.0


def _call_row(r: CallRecord) -> tuple[Any, ...]:
    return (
        r.run_id, r.root_run_id, r.request_id, r.route, r.ladder, r.rung, r.alternative, r.provider, r.model,
        r.started_at.isoformat(), r.started_at.timestamp(), r.duration_s, r.first_token_s, r.input_tokens,
        r.output_tokens, r.cached_input_tokens, r.reasoning_tokens, None if r.cost_usd is None else str(r.cost_usd),
        r.outcome, r.cause, r.error, r.prompt_chars, r.answer_chars, json.dumps(r.tags),
        json.dumps(r.metadata, default=str), r.user_id,
    )  # fmt: skip


def _record(row: aiosqlite.Row) -> CallRecord:
    return CallRecord(
        run_id=row["run_id"],
        root_run_id=row["root_run_id"],
        request_id=row["request_id"],
        route=row["route"],
        ladder=row["ladder"],
        rung=row["rung"],
        alternative=row["alternative"],
        provider=row["provider"],
        model=row["model"],
        started_at=datetime.fromisoformat(row["started_at"]),
        duration_s=row["duration_s"],
        first_token_s=row["first_token_s"],
        input_tokens=row["input_tokens"],
        output_tokens=row["output_tokens"],
        cached_input_tokens=row["cached_input_tokens"],
        reasoning_tokens=row["reasoning_tokens"],
        cost_usd=None if row["cost_usd"] is None else Decimal(row["cost_usd"]),
        outcome=row["outcome"],
        cause=row["cause"],
        error=row["error"],
        prompt_chars=row["prompt_chars"],
        answer_chars=row["answer_chars"],
        tags=json.loads(row["tags"]),
        metadata=json.loads(row["metadata"]),
    )


def _alert(row: aiosqlite.Row) -> Alert:
    return Alert(
        id=row["id"],
        rule=row["rule"],
        key=row["key"],
        state=row["state"],
        severity=row["severity"],
        message=row["message"],
        at=datetime.fromisoformat(row["at"]),
        labels=json.loads(row["labels"]),
    )


class CallStore:
    def __init__(
        self,
        path: Path | str,
        *,
        flush_interval_s: float = 0.5,
        retention_days: float = 30.0,
        clock: Callable[[], float] = time.time,
    ):
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.retention_days = retention_days
        self._clock = clock
        self._pending_calls: list[CallRecord] = []
        self._pending_alerts: list[Alert] = []
        self._pending_deliveries: list[DeliveryResult] = []
        self._pending_feedback: list[FeedbackRecord] = []
        self._pending_lock = threading.Lock()
        self._db: aiosqlite.Connection | None = None
        self._db_lock: asyncio.Lock | None = None
        self._writer: asyncio.Task[None] | None = None
        self._last_pruned = 0.0

    # -- writing ---------------------------------------------------------------------------
    def add(self, record: CallRecord) -> None:
        with self._pending_lock:
            self._pending_calls.append(record)
        self._ensure_writer()

    def add_alert(self, alert: Alert) -> None:
        with self._pending_lock:
            self._pending_alerts.append(alert)
        self._ensure_writer()

    def add_delivery(self, delivery: DeliveryResult) -> None:
        with self._pending_lock:
            self._pending_deliveries.append(delivery)
        self._ensure_writer()

    def add_feedback(self, feedback: FeedbackRecord) -> None:
        with self._pending_lock:
            self._pending_feedback.append(feedback)
        self._ensure_writer()

    def _ensure_writer(self) -> None:
        if self._writer is not None and not self._writer.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called from a worker thread: the next call on the loop starts the writer
        self._writer = loop.create_task(self._write_periodically(), name="call-store-writer")

    async def _write_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            try:
                await self.flush()
            except Exception:  # a storage fault must not stop monitoring; the records stay pending
                logger.exception("writing monitoring records to %s failed; will retry", self.path)

    async def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = await aiosqlite.connect(self.path)
            db.row_factory = aiosqlite.Row
            await db.execute("PRAGMA journal_mode=WAL")
            await db.execute("PRAGMA synchronous=NORMAL")
            await db.executescript(_SCHEMA)
            await db.commit()
            self._db = db
        return self._db

    def _lock(self) -> asyncio.Lock:
        if self._db_lock is None:
            self._db_lock = asyncio.Lock()
        return self._db_lock

    async def flush(self) -> None:
        """Write everything pending now, in one transaction."""
        async with self._lock():
            with self._pending_lock:
                calls, self._pending_calls = self._pending_calls, []
                alerts, self._pending_alerts = self._pending_alerts, []
                deliveries, self._pending_deliveries = self._pending_deliveries, []
                feedback, self._pending_feedback = self._pending_feedback, []
            try:
                db = await self._connection()
                if not (calls or alerts or deliveries or feedback):
                    await self._prune_if_due()
                    return
                await db.executemany(
                    f"INSERT OR REPLACE INTO calls ({_CALL_COLUMNS}) VALUES ({', '.join('?' * 26)})",
                    [_call_row(r) for r in calls],
                )
                await db.executemany(
                    "INSERT OR REPLACE INTO alerts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (a.id, a.rule, a.key, a.state, a.severity, a.message, a.at.isoformat(), a.at.timestamp(),
                         json.dumps(a.labels))
                        for a in alerts
                    ],
                )  # fmt: skip
                await db.executemany(
                    "INSERT INTO deliveries VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(d.alert_id, d.rule, d.state, d.sink, int(d.ok), d.attempts, d.error, d.at.isoformat())
                     for d in deliveries],
                )  # fmt: skip
                await db.executemany(
                    "INSERT INTO feedback VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [(f.run_id, f.score, f.comment, f.user_id, f.question_type, f.alternative, f.at.isoformat())
                     for f in feedback],
                )  # fmt: skip
                await db.commit()
            except Exception:
                with self._pending_lock:  # keep them for the next try, in order
                    self._pending_calls[:0] = calls
                    self._pending_alerts[:0] = alerts
                    self._pending_deliveries[:0] = deliveries
                    self._pending_feedback[:0] = feedback
                raise
            await self._prune_if_due()

    async def _prune_if_due(self) -> None:
        now = self._clock()
        if now - self._last_pruned < _HOUR_S or self._db is None:
            return
        self._last_pruned = now
        cutoff = now - self.retention_days * 86400
        await self._db.execute("DELETE FROM calls WHERE started_ts < ?", (cutoff,))
        await self._db.execute("DELETE FROM alerts WHERE at_ts < ?", (cutoff,))
        await self._db.commit()

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        await self.flush()
        if self._db is not None:
            await self._db.close()
            self._db = None

    # -- reading ---------------------------------------------------------------------------
    async def _query(self, sql: str, params: Sequence[Any]) -> list[aiosqlite.Row]:
        await self.flush()
        async with self._lock():
            db = await self._connection()
            async with db.execute(sql, params) as cursor:
                return list(await cursor.fetchall())

    async def find(
        self,
        *,
        run_id: str | None = None,
        request_id: str | None = None,
        model: str | None = None,
        outcome: str | None = None,
        tag: str | None = None,
        user_id: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[CallRecord]:
        """Call records, newest first. ``run_id`` matches an LLM call's or its root run's id."""
        where, params = ["1=1"], list[Any]()
        if run_id:
            where.append("(run_id = ? OR root_run_id = ?)")
            params += [run_id, run_id]
        if request_id:
            where.append("request_id = ?")
            params.append(request_id)
        if model:
            where.append("(model = ? OR alternative = ?)")
            params += [model, model]
        if outcome:
            where.append("outcome = ?")
            params.append(outcome)
        if tag:
            where.append("EXISTS (SELECT 1 FROM json_each(calls.tags) WHERE json_each.value = ?)")
            params.append(tag)
        if user_id:
            where.append("user_id = ?")
            params.append(user_id)
        if since:
            where.append("started_ts >= ?")
            params.append(since.timestamp())
        if until:
            where.append("started_ts < ?")
            params.append(until.timestamp())
        sql = f"SELECT * FROM calls WHERE {' AND '.join(where)} ORDER BY started_ts DESC LIMIT ?"
        return [_record(row) for row in await self._query(sql, [*params, limit])]

    async def window(self, since: datetime | None = None) -> list[CallRecord]:
        """Every record since ``since`` (all when None), oldest first."""
        rows = await self._query(
            "SELECT * FROM calls WHERE started_ts >= ? ORDER BY started_ts", [since.timestamp() if since else 0.0]
        )
        return [_record(row) for row in rows]

    async def alerts(self, *, limit: int = 100, since: datetime | None = None) -> list[Alert]:
        rows = await self._query(
            "SELECT * FROM alerts WHERE at_ts >= ? ORDER BY at_ts DESC LIMIT ?",
            [since.timestamp() if since else 0.0, limit],
        )
        return [_alert(row) for row in rows]

    async def feedback(self, *, limit: int = 100) -> list[dict[str, Any]]:
        rows = await self._query("SELECT * FROM feedback ORDER BY rowid DESC LIMIT ?", [limit])
        return [dict(row) for row in rows]

    async def deliveries(self, *alert_ids: str) -> list[dict[str, Any]]:
        """Delivery outcomes (sink, ok, attempts, error) of the given alerts, or of all."""
        sql, params = "SELECT * FROM deliveries", list(alert_ids)
        if alert_ids:
            sql += f" WHERE alert_id IN ({', '.join('?' * len(alert_ids))})"
        rows = await self._query(sql + " ORDER BY rowid", params)
        return [{**dict(row), "ok": bool(row["ok"])} for row in rows]


def utc_now() -> datetime:
    return datetime.now(UTC)
