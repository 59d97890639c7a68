"""``SqliteAnswerStore``: the response cache's answers in a SQLite file (WAL, so the workers of
one machine share it), one row per key with its expiry.

Expired rows are never served and are deleted at most every ``prune_every_s`` of the cache's
clock, by the write that finds the prune due. The connection is opened on first use, so a server
that never caches never creates the file. A file that cannot be opened, read or written makes a
miss (logged), not an error: the answer comes fresh from the model instead.

State: one aiosqlite connection, opened and used under an asyncio lock (aiosqlite serialises its
statements on its own thread; the lock keeps the open and the prune's transaction whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from pathlib import Path

import aiosqlite

from caching.answer_store import StoredAnswer
from monitoring.sqlite_files import open_database

logger = logging.getLogger("llm_server.cache")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key TEXT PRIMARY KEY,
    payload TEXT NOT NULL,
    stored_at REAL NOT NULL,
    expires_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS answers_expiry ON answers (expires_at);
"""
_ERRORS = (sqlite3.Error, OSError)


class SqliteAnswerStore:
    def __init__(self, path: Path, *, prune_every_s: float = 60.0):
        self.path = path
        self.prune_every_s = prune_every_s
        self._db: aiosqlite.Connection | None = None
        self._lock: asyncio.Lock | None = None
        self._pruned_at: float | None = None

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:  # made on the loop that uses it
            self._lock = asyncio.Lock()
        return self._lock

    async def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            self._db = await open_database(self.path, _SCHEMA, timeout_s=1.0)  # a cache miss beats a long wait
        return self._db

    async def get(self, key: str, now: float) -> StoredAnswer | None:
        try:
            async with self._guard():
                db = await self._connection()
                async with db.execute(
                    "SELECT payload, stored_at, expires_at FROM answers WHERE key = ? AND expires_at > ?", (key, now)
                ) as rows:
                    row = await rows.fetchone()
        except _ERRORS as exc:
            logger.warning("response cache file %s unreadable (%s): a miss", self.path, exc)
            await self._abandon()
            return None
        return None if row is None else StoredAnswer(str(row[0]), float(row[1]), float(row[2]))

    async def put(self, key: str, answer: StoredAnswer) -> None:
        try:
            async with self._guard():
                db = await self._connection()
                await db.execute(
                    "INSERT OR REPLACE INTO answers (key, payload, stored_at, expires_at) VALUES (?, ?, ?, ?)",
                    (key, answer.payload, answer.stored_at, answer.expires_at),
                )
                if self._pruned_at is None or answer.stored_at - self._pruned_at >= self.prune_every_s:
                    await db.execute("DELETE FROM answers WHERE expires_at <= ?", (answer.stored_at,))
                    self._pruned_at = answer.stored_at
                await db.commit()
        except _ERRORS as exc:
            logger.warning("response cache file %s refused an answer (%s): not kept", self.path, exc)
            await self._abandon()

    async def count(self) -> int:
        """Rows in the file, expired ones not yet pruned included (for tests and operators)."""
        async with self._guard():
            db = await self._connection()
            async with db.execute("SELECT COUNT(*) FROM answers") as rows:
                row = await rows.fetchone()
        return int(row[0]) if row else 0

    async def _abandon(self) -> None:
        """Drop a connection that failed (and any transaction it left open); the next use opens anew."""
        async with self._guard():
            await self.close()

    async def close(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            with contextlib.suppress(*_ERRORS):
                await db.close()
