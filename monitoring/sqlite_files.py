"""``open_database``: a connection to one of the server's SQLite files, ready to use: its folder
made, WAL mode (workers of one machine write concurrently), its schema applied."""

from __future__ import annotations

from pathlib import Path

import aiosqlite


async def open_database(path: Path, schema: str, *, timeout_s: float = 5.0) -> aiosqlite.Connection:
    """``timeout_s``: how long a write waits for another process's; the connection is closed
    again if the schema cannot be applied."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = await aiosqlite.connect(path, timeout=timeout_s)
    try:
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.executescript(schema)
        await db.commit()
    except BaseException:
        await db.close()
        raise
    return db
