"""What a read of call records asks for and gets: ``CallFilter`` (as SQL for the file and as a
test for records not written yet, kept side by side so the two cannot drift), ``CallCursor``
(where the previous page ended) and ``CallPage`` (a bounded page and the cursor of the rest).

Pages run newest first by (start time, run id): a keyset, so a page costs the same however deep
it is, and records written meanwhile neither shift nor repeat the ones still to come.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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

    def precedes(self, record: CallRecord) -> bool:
        """Whether ``record`` comes after this cursor (is older), so belongs to a later page."""
        return order_key(record) < (self.started_ts, self.run_id)


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

    def sql(self) -> tuple[str, list[Any]]:
        """The WHERE clause over the ``calls`` table, and its parameters."""
        where, params = ["1=1"], list[Any]()
        if self.run_id:
            where.append("(run_id = ? OR root_run_id = ?)")
            params += [self.run_id, self.run_id]
        if self.request_id:
            where.append("request_id = ?")
            params.append(self.request_id)
        if self.model:
            where.append("(model = ? OR alternative = ?)")
            params += [self.model, self.model]
        if self.outcome:
            where.append("outcome = ?")
            params.append(self.outcome)
        if self.tag:
            where.append("EXISTS (SELECT 1 FROM json_each(calls.tags) WHERE json_each.value = ?)")
            params.append(self.tag)
        for user in (self.user_id, self.owner):
            if user:
                where.append("user_id = ?")
                params.append(user)
        if self.owner:
            where.append("json_extract(metadata, '$.api_key_id') IS NOT NULL")
        if self.since:
            where.append("started_ts >= ?")
            params.append(epoch(self.since))
        if self.until:
            where.append("started_ts < ?")
            params.append(epoch(self.until))
        if self.after:
            where.append("(started_ts, run_id) < (?, ?)")
            params += [self.after.started_ts, self.after.run_id]
        return " AND ".join(where), params

    def matches(self, r: CallRecord) -> bool:
        """The WHERE clause of ``sql``, for records not in the file yet."""
        return (
            (not self.run_id or self.run_id in (r.run_id, r.root_run_id))
            and (not self.request_id or r.request_id == self.request_id)
            and (not self.model or self.model in (r.model, r.alternative))
            and (not self.outcome or r.outcome == self.outcome)
            and (not self.tag or self.tag in r.tags)
            and (not self.user_id or r.user_id == self.user_id)
            and (not self.owner or (r.user_id == self.owner and r.metadata.get("api_key_id") is not None))
            and (not self.since or r.started_at.timestamp() >= epoch(self.since))
            and (not self.until or r.started_at.timestamp() < epoch(self.until))
            and (not self.after or self.after.precedes(r))
        )


@dataclass(frozen=True)
class CallPage:
    """Records newest first, and where the next page starts (None: there are no more)."""

    records: list[CallRecord] = field(default_factory=list)
    next: CallCursor | None = None
