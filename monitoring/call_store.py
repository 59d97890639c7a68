"""``CallStore``: call records, alerts, alert deliveries and feedback in a SQLite file (WAL).

Writes never happen on the request path: ``add`` only queues (``PendingWrites``, safe from worker
threads), and a background task writes everything pending in one transaction every
``flush_interval_s``. That interval is the durability bound: a process killed with SIGKILL loses
at most the records of the last interval (plus the one transaction in flight). Reads flush first
and include whatever still waits, so the API always sees every record that finished before it.

When the file cannot be written (disk full, read-only, gone) nothing is dropped on the spot: the
transaction rolls back, the records stay queued in order (at most ``max_pending`` of each kind)
and a later flush writes them, once; retries back off to one every few seconds, and the file is
never deleted or recreated. Every flush hands a ``WriteReport`` to ``listeners`` (the storage
alert, metrics). All SQLite access goes through one aiosqlite connection, serialized by an
asyncio lock; a failed write closes it, since one opened on a read-only file stays read-only.
The tables, and how a record becomes a row and back, are specs in ``monitoring.record_tables``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import aiosqlite

from monitoring.alert import Alert
from monitoring.alert_dispatcher import DeliveryResult
from monitoring.call_query import CallCursor, CallFilter, CallPage, epoch, order_key, record_bytes
from monitoring.pending_writes import Batch, PendingWrites
from monitoring.record_tables import ALERTS, CALLS, DELIVERIES, FEEDBACK, SCHEMA, TABLES, Op, Table, Where
from monitoring.sqlite_files import open_database
from vocabulary.records import CallRecord, FeedbackRecord

logger = logging.getLogger("llm_server.storage")

R = TypeVar("R")
_HOUR_S = 3600.0
_MAX_RETRY_S = 5.0  # while writes fail, retry at least this often: the outage ends within seconds of the fix
_STORAGE_ERRORS = (sqlite3.Error, OSError)  # what a full, read-only or missing disk raises
_FETCH_ROWS = 16  # rows per fetch while a page is bounded in bytes: a row may hold a megabyte of metadata


@dataclass(frozen=True)
class WriteReport:
    """One flush: whether the file took the records, what still waits, what was dropped."""

    error: str | None  # why writing failed, e.g. "database or disk is full (SQLITE_FULL)"; None: it worked
    error_kind: str | None  # a short name with few values, for metrics: SQLITE_FULL, PermissionError, ...
    written: int
    waiting: dict[str, int]  # per kind: calls, alerts, deliveries, feedback
    dropped: dict[str, int]  # per kind, since the previous report
    lost: int  # dropped since writing started failing; the report that ends the failure still carries it

    @property
    def ok(self) -> bool:
        return self.error is None


def _describe(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorname", None):
        name = str(exc.sqlite_errorname)
        return f"{exc} ({name})", name
    if isinstance(exc, OSError):
        return str(exc), type(exc).__name__
    return f"{type(exc).__name__}: {exc}", type(exc).__name__


class CallStore:
    def __init__(
        self,
        path: Path | str,
        *,
        flush_interval_s: float = 0.5,
        retention_days: float = 30.0,
        max_pending: int = 20_000,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ):
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.retention_days = retention_days
        self.listeners: list[Callable[[WriteReport], None]] = []
        self._clock = clock
        self._monotonic = monotonic
        self._pending = PendingWrites(max_pending)
        self._db: aiosqlite.Connection | None = None
        self._db_lock: asyncio.Lock | None = None
        self._writer: asyncio.Task[None] | None = None
        self._last_pruned = 0.0
        self._failure: str | None = None  # why the last write failed; None while writes succeed
        self._failures = 0  # in a row
        self._retry_at = 0.0
        self._lost = 0  # dropped since writes started failing
        self._reopen = False  # whether the connection may be one SQLite opened read-only

    @property
    def max_pending(self) -> int:
        return self._pending.limit

    def health(self) -> dict[str, Any]:
        """For ``/health``: whether the file takes writes, and what waits in memory meanwhile."""
        return {"writable": self._failure is None, "error": self._failure, "waiting": self._pending.sizes()}

    # -- writing ---------------------------------------------------------------------------
    def add(self, record: CallRecord) -> None:
        self._pending.add_call(record)
        self._ensure_writer()

    def add_alert(self, alert: Alert) -> None:
        self._pending.add_alert(alert)
        self._ensure_writer()

    def add_delivery(self, delivery: DeliveryResult) -> None:
        self._pending.add_delivery(delivery)
        self._ensure_writer()

    def add_feedback(self, feedback: FeedbackRecord) -> None:
        self._pending.add_feedback(feedback)
        self._ensure_writer()

    def _ensure_writer(self) -> None:
        if self._writer is not None and not self._writer.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # called from a worker thread: the next call on the loop starts the writer
        self._writer = loop.create_task(self._write_periodically(), name="call-store-writer")

    async def open(self) -> None:
        """Open the file and start writing. A file that cannot be opened is reported to the
        listeners, not raised: the server serves anyway and records wait until it can."""
        with contextlib.suppress(Exception):
            await self.flush()
        self._ensure_writer()

    async def _write_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval_s)
            if self._due():
                with contextlib.suppress(Exception):  # flush reported it; the records stay pending
                    await self.flush()

    def _due(self) -> bool:
        return self._failure is None or self._monotonic() >= self._retry_at

    async def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            db = await open_database(self.path, SCHEMA)
            db.row_factory = aiosqlite.Row
            self._db = db
        return self._db

    async def _disconnect(self) -> None:
        """Close the connection, rolling back whatever a failed write left open."""
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(Exception):
                await db.close()

    async def _abandon(self, exc: Exception) -> None:
        """Roll back a failed write. A connection SQLite opened read-only stays so: close that one,
        and have the next write open a new one; keep any other, since reopening may need disk space."""
        name = str(getattr(exc, "sqlite_errorname", ""))
        if self._db is None or name.startswith(("SQLITE_READONLY", "SQLITE_CANTOPEN")):
            self._reopen = True
            await self._disconnect()
            return
        try:
            await self._db.rollback()
        except _STORAGE_ERRORS:
            await self._disconnect()

    def _lock(self) -> asyncio.Lock:
        if self._db_lock is None:
            self._db_lock = asyncio.Lock()
        return self._db_lock

    async def flush(self) -> None:
        """Write everything pending now, in one transaction. If the file refuses, everything stays
        pending (in order) for the next flush and the error is raised."""
        async with self._lock():
            batch = self._pending.take()
            try:
                if self._reopen:  # reads may have reopened it while the file was read-only
                    await self._disconnect()
                db = await self._connection()
                if batch:
                    await _insert(db, batch)
                    await db.commit()
            except Exception as exc:
                self._pending.restore(batch)
                await self._abandon(exc)
                self._failed(exc)
                raise
            self._succeeded(len(batch))
            await self._prune_if_due()

    def _failed(self, exc: Exception) -> None:
        error, kind = _describe(exc)
        if error != self._failure:
            logger.error(
                "cannot write monitoring records to %s: %s; %s waiting in memory, retrying",
                self.path, error, self._pending.sizes(), exc_info=not isinstance(exc, _STORAGE_ERRORS),
            )  # fmt: skip
        self._failure = error
        self._failures += 1
        backoff = self.flush_interval_s * 2 ** min(self._failures, 16)
        self._retry_at = self._monotonic() + min(backoff, _MAX_RETRY_S)
        self._report(error, kind, written=0)

    def _succeeded(self, written: int) -> None:
        self._reopen = False
        if self._failure is not None:
            logger.warning("monitoring records are written to %s again (%d that waited)", self.path, written)
        self._failure, self._failures = None, 0
        self._report(None, None, written)
        self._lost = 0

    def _report(self, error: str | None, kind: str | None, written: int) -> None:
        dropped = self._pending.take_dropped()
        if dropped:
            self._lost += sum(dropped.values())
            logger.error(
                "dropped monitoring records %s: more than %d of a kind waited to be written to %s",
                dropped, self._pending.limit, self.path,
            )  # fmt: skip
        report = WriteReport(error, kind, written, self._pending.sizes(), dropped, self._lost)
        for listener in self.listeners:
            try:
                listener(report)
            except Exception:
                logger.exception("storage listener failed")

    async def _prune_if_due(self) -> None:
        now = self._clock()
        if now - self._last_pruned < _HOUR_S or self._db is None:
            return
        self._last_pruned = now
        cutoff = now - self.retention_days * 86400
        try:
            for table in TABLES:
                if table.pruned_by:
                    where, params = table.where([Where((table.pruned_by,), Op.BELOW, cutoff)])
                    await self._db.execute(f"DELETE FROM {table.name} WHERE {where}", params)
            await self._db.commit()
        except _STORAGE_ERRORS as exc:  # what was written stays written; pruning waits an hour
            logger.warning("deleting old monitoring records from %s failed: %s", self.path, _describe(exc)[0])
            await self._abandon(exc)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer
        try:
            await self.flush()
        except Exception:
            logger.error("monitoring records %s could not be written to %s before shutdown and are lost",
                         self._pending.sizes(), self.path)  # fmt: skip
        await self._disconnect()

    # -- reading ---------------------------------------------------------------------------
    async def _query(
        self, sql: str, params: Sequence[Any], *, take: Callable[[aiosqlite.Row], bool] | None = None
    ) -> tuple[list[aiosqlite.Row], Batch]:
        """Rows from the file, after writing what is due, and what still waits (taken under the
        same lock, so a record is in one or the other). While writes fail, the file may not even
        be readable: then only what waits is answered, and the storage alert says why.

        With ``take``, the rows go to it instead, in order and a few at a time, until it returns
        False: a read bounded in bytes never holds more than one fetch beyond its bound."""
        if self._due():
            with contextlib.suppress(Exception):  # reported by flush; the read answers anyway
                await self.flush()
        async with self._lock():
            try:
                db = await self._connection()
                async with db.execute(sql, params) as cursor:
                    if take is None:
                        rows = list(await cursor.fetchall())
                    else:
                        rows = []
                        while chunk := await cursor.fetchmany(_FETCH_ROWS):
                            if not all(map(take, chunk)):
                                break
            except _STORAGE_ERRORS as exc:
                if self._failure is None:
                    raise
                logger.warning("cannot read %s either (%s): answering from memory", self.path, _describe(exc)[0])
                await self._abandon(exc)
                rows = []
            return rows, self._pending.snapshot()

    async def find(
        self,
        *,
        run_id: str | None = None,
        request_id: str | None = None,
        model: str | None = None,
        outcome: str | None = None,
        tag: str | None = None,
        user_id: str | None = None,
        owner: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[CallRecord]:
        """Call records, newest first. ``run_id`` matches an LLM call's or its root run's id;
        ``owner`` keeps the records a key of that user made (see ``CallFilter``)."""
        wanted = CallFilter(
            run_id=run_id, request_id=request_id, model=model, outcome=outcome, tag=tag, user_id=user_id,
            owner=owner, since=since, until=until,
        )  # fmt: skip
        return (await self.page(wanted, limit=limit)).records

    async def page(self, wanted: CallFilter, *, limit: int = 100, max_bytes: int | None = None) -> CallPage:
        """At most ``limit`` records matching ``wanted``, newest first, starting after its cursor,
        and, with ``max_bytes``, no more than fit in that many bytes of JSON (one at least, so a
        page always moves on); ``next`` is where the rest starts. The file is read only as far as
        the page needs, and records still waiting to be written take their places in it."""
        where, params = wanted.sql()
        stored: list[CallRecord] = []
        sizes: dict[int, int] = {}  # by id(record): each is measured once
        used, cut = 0, False

        def size(record: CallRecord) -> int:
            if max_bytes is None:
                return 0
            if id(record) not in sizes:
                sizes[id(record)] = record_bytes(record)
            return sizes[id(record)]

        def take(row: aiosqlite.Row) -> bool:  # one row past the page, to know the file holds more
            nonlocal used, cut
            stored.append(CALLS.record_of(row))
            used += size(stored[-1])
            over_budget = max_bytes is not None and used > max_bytes and len(stored) > 1  # the first always fits
            cut = len(stored) > limit or over_budget
            return not cut

        sql = f"SELECT * FROM calls WHERE {where} ORDER BY started_ts DESC, run_id DESC LIMIT ?"
        _, waiting = await self._query(sql, [*params, limit + 1], take=take)
        merged = _merge_calls(stored, filter(wanted.matcher(), waiting.calls), newest_first=True)
        # Past the last row read, the file may hold records that come before the waiting ones.
        horizon = order_key(stored[-1]) if cut else None
        records: list[CallRecord] = []
        used, more = 0, cut
        for record in merged:
            if records and (
                len(records) == limit
                or (horizon is not None and order_key(record) < horizon)
                or (max_bytes is not None and used + size(record) > max_bytes)
            ):
                more = True
                break
            records.append(record)
            used += size(record)
        return CallPage(records, CallCursor.after(records[-1]) if more and records else None)

    async def _select(
        self, table: Table[R], conditions: list[Where], order: str, limit: int | None = None
    ) -> tuple[list[aiosqlite.Row], list[R]]:
        """Rows of ``table`` meeting ``conditions``, and the records still waiting that meet them."""
        where, params = table.where(conditions)
        sql = f"SELECT * FROM {table.name} WHERE {where} ORDER BY {order}"
        if limit is not None:
            sql, params = sql + " LIMIT ?", [*params, limit]
        rows, waiting = await self._query(sql, params)
        return rows, list(filter(table.matcher(conditions), cast(Iterable[R], waiting.items(table.name))))

    async def window(self, since: datetime | None = None) -> list[CallRecord]:
        """Every record since ``since`` (all when None), oldest first."""
        start = epoch(since) if since else 0.0
        rows, recent = await self._select(CALLS, [Where(("started_ts",), Op.AT_LEAST, start)], "started_ts")
        return _merge_calls([CALLS.record_of(row) for row in rows], recent, newest_first=False)

    async def alerts(self, *, limit: int = 100, since: datetime | None = None) -> list[Alert]:
        start = epoch(since) if since else 0.0
        rows, recent = await self._select(ALERTS, [Where(("at_ts",), Op.AT_LEAST, start)], "at_ts DESC", limit)
        stored = [ALERTS.record_of(row) for row in rows]
        if not recent:
            return stored
        by_id = {a.id: a for a in stored} | {a.id: a for a in recent}
        return sorted(by_id.values(), key=lambda a: a.at, reverse=True)[:limit]

    async def feedback(self, *, limit: int = 100) -> list[dict[str, Any]]:
        rows, recent = await self._select(FEEDBACK, [], "rowid DESC", limit)
        newest_first = [FEEDBACK.shown_record(f) for f in reversed(recent)] + [FEEDBACK.shown(row) for row in rows]
        return newest_first[:limit]

    async def deliveries(self, *alert_ids: str) -> list[dict[str, Any]]:
        """Delivery outcomes (sink, ok, attempts, error) of the given alerts, or of all."""
        of_alerts = [Where(("alert_id",), Op.IN, alert_ids)] if alert_ids else []
        rows, recent = await self._select(DELIVERIES, of_alerts, "rowid")
        return [DELIVERIES.shown(row) for row in rows] + [DELIVERIES.shown_record(d) for d in recent]


async def _insert(db: aiosqlite.Connection, batch: Batch) -> None:
    for table in TABLES:
        await db.executemany(table.insert(), [table.row(item) for item in batch.items(table.name)])


def _merge_calls(stored: list[CallRecord], waiting: Iterable[CallRecord], *, newest_first: bool) -> list[CallRecord]:
    """Records from the file and those still waiting (which replace a stored one of the same run)."""
    recent = list(waiting)
    if not recent:
        return stored
    by_run = {r.run_id: r for r in stored} | {r.run_id: r for r in recent}
    return sorted(by_run.values(), key=order_key, reverse=newest_first)
