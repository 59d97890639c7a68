"""File faults made the way they happen in production (needs root's capabilities, else skips)."""

from __future__ import annotations

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
