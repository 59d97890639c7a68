"""What a read of call records asks for and gets: ``CallFilter`` (one list of conditions, made
into SQL for the file and into a test for records not written yet), ``CallCursor``
(where the previous page ended) and ``CallPage`` (a bounded page and the cursor of the rest).

Pages run newest first by (start time, run id): a keyset, so a page costs the same however deep
it is, and records written meanwhile neither shift nor repeat the ones still to come.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitoring.record_tables import CALLS, Op, Where
from vocabulary.records import CallRecord


def epoch(moment: datetime) -> float:
    """Seconds since 1970 of a time a client sent; one without a zone is UTC (as local time,
    ``datetime.timestamp`` overflows near year 1 and raised a 500)."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def order_key(record: CallRecord) -> tuple[float, str]:
    """A record's place in a page, the same as the file's ``(started_ts, run_id)``."""
    return record.started_at.timestamp(), record.run_id


def record_bytes(record: CallRecord) -> int:
    """The size of the record in a JSON response (as the app renders one: compact ASCII JSON)."""
    return len(json.dumps(record.as_dict(), ensure_ascii=True, separators=(",", ":"), default=str))


class BadCursor(ValueError):
    """A cursor this server did not hand out (or one damaged on the way)."""


@dataclass(frozen=True)
class CallCursor:
    """The last record of a page: the next page starts just after it, in the same order."""

    started_ts: float
    run_id: str

    @classmethod
    def after(cls, record: CallRecord) -> CallCursor:
        return cls(*order_key(record))

    def encode(self) -> str:
        raw = json.dumps([self.started_ts, self.run_id], separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")

    @classmethod
    def decode(cls, text: str) -> CallCursor:
        try:
            raw = base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
            started_ts, run_id = json.loads(raw)
            number = isinstance(started_ts, int | float) and not isinstance(started_ts, bool)
            if not number or not math.isfinite(float(started_ts)) or not isinstance(run_id, str):
                raise BadCursor(text)
        except (binascii.Error, UnicodeError, ValueError, TypeError, OverflowError):  # OverflowError: 1e400 as an int
            raise BadCursor(text) from None
        return cls(float(started_ts), run_id)


@dataclass(frozen=True)
class CallFilter:
    """Which records a read wants. ``owner``: only the records a key of this user made (the
    server stamped its ``user_id`` and an ``api_key_id``), for callers who may see only their own."""

    run_id: str | None = None
    request_id: str | None = None
    model: str | None = None
    outcome: str | None = None
    tag: str | None = None
    user_id: str | None = None
    owner: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    after: CallCursor | None = None

    def conditions(self) -> list[Where]:
        """The conditions of the fields given (not None, not empty), each written once in ``_CONDITIONS``."""
        return [where for name, make in _CONDITIONS.items() if (value := getattr(self, name)) for where in make(value)]

    def sql(self) -> tuple[str, list[Any]]:
        """The WHERE clause over the ``calls`` table, and its parameters."""
        return CALLS.where(self.conditions())

    def matcher(self) -> Callable[[CallRecord], bool]:
        """The WHERE clause of ``sql`` as a test, for records not in the file yet."""
        return CALLS.matcher(self.conditions())


# Each ``CallFilter`` field, and the conditions on the ``calls`` columns it sets when given.
_CONDITIONS: dict[str, Callable[[Any], list[Where]]] = {
    "run_id": lambda v: [Where(("run_id", "root_run_id"), Op.EQ, v)],  # an LLM call's id or its root run's
    "request_id": lambda v: [Where(("request_id",), Op.EQ, v)],
    "model": lambda v: [Where(("model", "alternative"), Op.EQ, v)],  # a model's name or its alternative's key
    "outcome": lambda v: [Where(("outcome",), Op.EQ, v)],
    "tag": lambda v: [Where(("tags",), Op.HAS, v)],
    "user_id": lambda v: [Where(("user_id",), Op.EQ, v)],
    "owner": lambda v: [Where(("user_id",), Op.EQ, v), Where(("metadata",), Op.HAS_KEY, "api_key_id")],
    "since": lambda v: [Where(("started_ts",), Op.AT_LEAST, epoch(v))],
    "until": lambda v: [Where(("started_ts",), Op.BELOW, epoch(v))],
    "after": lambda v: [Where(("started_ts", "run_id"), Op.BELOW, (v.started_ts, v.run_id))],
}


@dataclass(frozen=True)
class CallPage:
    """Records newest first, and where the next page starts (None: there are no more)."""

    records: list[CallRecord] = field(default_factory=list)
    next: CallCursor | None = None
