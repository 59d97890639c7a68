"""File faults made the way they happen in production (needs root's capabilities, else skips)."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


def first_line(output: bytes) -> str:
    return output.decode().strip().partition("\n")[0]


@contextmanager
def read_only(db: Path) -> Iterator[None]:
    """The SQLite file, its WAL and its folder made immutable. The -shm file is left alone: SQLite
    maps it into memory, where a refused write is a SIGBUS that kills the process, not an error."""
    targets = [str(p) for p in (db, db.with_name(db.name + "-wal"), db.parent) if p.exists()]
    made = subprocess.run(["chattr", "+i", *targets], capture_output=True)
    if made.returncode:
        subprocess.run(["chattr", "-i", *targets], capture_output=True)
        pytest.skip(f"a read-only file is chattr +i; it failed: {first_line(made.stderr)}")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", *targets], check=True)


def rows(path: Path) -> int:
    """Call rows in the file, read-only (never creating the file or its schema)."""
    if not path.exists():
        return 0
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        try:
            return int(db.execute("SELECT count(*) FROM calls").fetchone()[0])
        except sqlite3.OperationalError:
            return 0
