"""The tables of the monitoring file, one spec per record kind (calls, alerts, deliveries, feedback):
each column's SQL type and how it converts from the dataclass field and back. A spec makes the DDL,
the INSERT, the record of a selected row, and the filters: a ``Where`` gives both the SQL condition
and the test of a record still waiting in memory, so the two cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Generic, Protocol, TypeVar

from monitoring.alert import Alert
from monitoring.alert_dispatcher import DeliveryResult
from vocabulary import Outcome
from vocabulary.records import CallRecord, FeedbackRecord

R = TypeVar("R")


class Row(Protocol):
    """A selected row by column name (``sqlite3.Row``, or a dict)."""

    def __getitem__(self, key: str, /) -> Any: ...


def _same(value: Any) -> Any:
    return value


def _json_any(value: Any) -> str:
    return json.dumps(value, default=str)  # client metadata may hold values JSON has no type for


@dataclass(frozen=True)
class Codec:
    """A field's value as stored (``to_sql``) and back (``from_sql``); ``shown``: a stored value as
    the API shows it, for the kinds it answers as rows."""

    to_sql: Callable[[Any], Any] = _same
    from_sql: Callable[[Any], Any] = _same
    shown: Callable[[Any], Any] = _same


AS_IS = Codec()
ISO_TIME = Codec(datetime.isoformat, datetime.fromisoformat)
DECIMAL = Codec(str, Decimal)  # as text: exact, and REAL would round a price
JSON = Codec(json.dumps, json.loads)
JSON_ANY = Codec(_json_any, json.loads)
FLAG = Codec(int, bool, bool)
OUTCOME = Codec(from_sql=Outcome)


@dataclass(frozen=True)
class Column:
    name: str  # the dataclass field it stores, unless ``derived``
    sql_type: str  # TEXT, INTEGER or REAL
    codec: Codec = AS_IS
    null: bool = False
    key: bool = False  # the primary key: a record with the same key replaces the stored one
    derived: Callable[[Any], Any] | None = None  # made from the record, for queries and indexes; never read back

    def definition(self) -> str:
        # A key gets no NOT NULL: the files on users' disks were made without it.
        constraint = " PRIMARY KEY" if self.key else "" if self.null else " NOT NULL"
        return f"{self.name} {self.sql_type}{constraint}"

    def value(self, record: Any) -> Any:
        """The value in memory."""
        return self.derived(record) if self.derived else getattr(record, self.name)

    def stored(self, record: Any) -> Any:
        """The value as the file holds it."""
        value = self.value(record)
        return None if value is None and self.null else self.codec.to_sql(value)

    def read(self, value: Any) -> Any:
        return None if value is None and self.null else self.codec.from_sql(value)

    def shown(self, value: Any) -> Any:
        return None if value is None and self.null else self.codec.shown(value)


@dataclass(frozen=True)
class Index:
    name: str
    columns: tuple[str, ...]


class Op(StrEnum):
    EQ = "="  # one of the columns equals the value
    IN = "in"  # the column equals one of the values
    AT_LEAST = ">="  # the column (several: as one row value, compared in order) is at least the value
    BELOW = "<"  # ... is below the value
    HAS = "has"  # the JSON list in the column holds the value
    HAS_KEY = "has key"  # the JSON object in the column has a value other than null under the key (a plain name)


@dataclass(frozen=True)
class Where:
    """One condition of a filter, defined once: ``Table.where`` makes its SQL and ``Table.matcher``
    its test of a record that is not in the file yet."""

    columns: tuple[str, ...]
    op: Op
    value: Any


@dataclass(frozen=True)
class Table(Generic[R]):
    """The table of one record kind; the column order is the order of the files on disk."""

    name: str
    record: Callable[..., R]
    columns: tuple[Column, ...]
    indexes: tuple[Index, ...] = ()
    pruned_by: str | None = None  # the column (seconds since 1970) retention deletes by; None: kept

    def ddl(self) -> list[str]:
        """CREATE statements that leave a table already there as it is."""
        body = ", ".join(c.definition() for c in self.columns)
        return [
            f"CREATE TABLE IF NOT EXISTS {self.name} ({body})",
            *(f"CREATE INDEX IF NOT EXISTS {i.name} ON {self.name} ({', '.join(i.columns)})" for i in self.indexes),
        ]

    def insert(self) -> str:
        verb = "INSERT OR REPLACE" if any(c.key for c in self.columns) else "INSERT"
        names = ", ".join(c.name for c in self.columns)
        return f"{verb} INTO {self.name} ({names}) VALUES ({', '.join('?' * len(self.columns))})"

    def row(self, record: R) -> tuple[Any, ...]:
        """The values of ``insert`` for one record."""
        return tuple(c.stored(record) for c in self.columns)

    def record_of(self, row: Row) -> R:
        return self.record(**{c.name: c.read(row[c.name]) for c in self.columns if c.derived is None})

    def shown(self, row: Row) -> dict[str, Any]:
        """A stored row as the API answers it."""
        return {c.name: c.shown(row[c.name]) for c in self.columns}

    def shown_record(self, record: R) -> dict[str, Any]:
        """A record not written yet, exactly as ``shown`` will answer it once it is."""
        return {c.name: c.shown(c.stored(record)) for c in self.columns}

    def column(self, name: str) -> Column:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.name} has no column {name}")

    def where(self, conditions: Iterable[Where]) -> tuple[str, list[Any]]:
        """The WHERE clause of ``conditions`` (all of them), and its parameters."""
        clauses, params = [], list[Any]()
        for c in conditions:
            for name in c.columns:
                self.column(name)  # a misspelt column fails here, not as SQL
            clause, values = _sql(self.name, c)
            clauses.append(clause)
            params += values
        return " AND ".join(clauses) or "1=1", params

    def matcher(self, conditions: Iterable[Where]) -> Callable[[R], bool]:
        """Whether a record meets ``conditions`` (all of them), as the WHERE clause of ``where`` would."""
        tests = [_test([self.column(name) for name in c.columns], c) for c in conditions]
        return lambda record: all(test(record) for test in tests)


def _sql(table: str, c: Where) -> tuple[str, list[Any]]:
    columns, value = c.columns, c.value
    if c.op is Op.EQ:
        either = " OR ".join(f"{name} = ?" for name in columns)
        return (f"({either})" if len(columns) > 1 else either), [value] * len(columns)
    (name, *_) = columns
    if c.op is Op.IN:
        return f"{name} IN ({', '.join('?' * len(value))})", list(value)
    if c.op in (Op.AT_LEAST, Op.BELOW):
        if len(columns) == 1:
            return f"{name} {c.op.value} ?", [value]
        return f"({', '.join(columns)}) {c.op.value} ({', '.join('?' * len(columns))})", list(value)
    if c.op is Op.HAS:
        return f"EXISTS (SELECT 1 FROM json_each({table}.{name}) WHERE json_each.value = ?)", [value]
    return f"json_extract({name}, ?) IS NOT NULL", [f"$.{value}"]  # Op.HAS_KEY


def _test(columns: Sequence[Column], c: Where) -> Callable[[Any], bool]:
    # Comparisons read a record's values as the file holds them, which SQLite compares with the same
    # parameters; the JSON operators read the list or object that the stored JSON text encodes.
    value, (first, *_) = c.value, columns
    if c.op is Op.EQ:
        return lambda r: any(column.stored(r) == value for column in columns)
    if c.op is Op.IN:
        return lambda r: first.stored(r) in value
    if c.op in (Op.AT_LEAST, Op.BELOW):
        bound = (value,) if len(columns) == 1 else tuple(value)
        below = c.op is Op.BELOW

        def compare(r: Any) -> bool:
            stored = tuple(column.stored(r) for column in columns)
            if None in stored:
                return False  # as in SQL, where a comparison with NULL is never true
            return stored < bound if below else stored >= bound

        return compare
    if c.op is Op.HAS:
        return lambda r: value in first.value(r)
    return lambda r: isinstance(found := first.value(r), dict) and found.get(value) is not None  # Op.HAS_KEY


def _started_ts(r: CallRecord) -> float:
    return r.started_at.timestamp()


def _at_ts(a: Alert) -> float:
    return a.at.timestamp()


def _user_id(r: CallRecord) -> str | None:
    return r.user_id


CALLS = Table(
    "calls",
    CallRecord,
    (
        Column("run_id", "TEXT", key=True),
        Column("root_run_id", "TEXT", null=True),
        Column("request_id", "TEXT", null=True),
        Column("route", "TEXT", null=True),
        Column("ladder", "TEXT", null=True),
        Column("rung", "INTEGER", null=True),
        Column("alternative", "TEXT", null=True),
        Column("provider", "TEXT"),
        Column("model", "TEXT"),
        Column("started_at", "TEXT", ISO_TIME),
        Column("started_ts", "REAL", derived=_started_ts),  # pages, windows and retention go by it
        Column("duration_s", "REAL"),
        Column("first_token_s", "REAL", null=True),
        Column("input_tokens", "INTEGER"),
        Column("output_tokens", "INTEGER"),
        Column("cached_input_tokens", "INTEGER"),
        Column("reasoning_tokens", "INTEGER"),
        Column("cost_usd", "TEXT", DECIMAL, null=True),
        Column("outcome", "TEXT", OUTCOME),
        Column("cause", "TEXT", null=True),
        Column("error", "TEXT", null=True),
        Column("prompt_chars", "INTEGER"),
        Column("answer_chars", "INTEGER"),
        Column("tags", "TEXT", JSON),
        Column("metadata", "TEXT", JSON_ANY),
        Column("user_id", "TEXT", null=True, derived=_user_id),  # from the metadata, for the user filters
    ),
    (
        Index("calls_started", ("started_ts",)),
        Index("calls_page", ("started_ts", "run_id")),
        Index("calls_request", ("request_id",)),
        Index("calls_root", ("root_run_id",)),
    ),
    pruned_by="started_ts",
)

ALERTS = Table(
    "alerts",
    Alert,
    (
        Column("id", "TEXT", key=True),
        Column("rule", "TEXT"),
        Column("key", "TEXT"),
        Column("state", "TEXT"),
        Column("severity", "TEXT"),
        Column("message", "TEXT"),
        Column("at", "TEXT", ISO_TIME),
        Column("at_ts", "REAL", derived=_at_ts),
        Column("labels", "TEXT", JSON),
    ),
    (Index("alerts_at", ("at_ts",)),),
    pruned_by="at_ts",
)

DELIVERIES = Table(
    "deliveries",
    DeliveryResult,
    (
        Column("alert_id", "TEXT"),
        Column("rule", "TEXT"),
        Column("state", "TEXT"),
        Column("sink", "TEXT"),
        Column("ok", "INTEGER", FLAG),
        Column("attempts", "INTEGER"),
        Column("error", "TEXT", null=True),
        Column("at", "TEXT", ISO_TIME),
    ),
)

FEEDBACK = Table(
    "feedback",
    FeedbackRecord,
    (
        Column("run_id", "TEXT"),
        Column("score", "REAL"),
        Column("comment", "TEXT", null=True),
        Column("user_id", "TEXT", null=True),
        Column("question_type", "TEXT", null=True),
        Column("alternative", "TEXT", null=True),
        Column("at", "TEXT", ISO_TIME),
    ),
)

TABLES: tuple[Table[Any], ...] = (CALLS, ALERTS, DELIVERIES, FEEDBACK)  # named as ``PendingWrites`` kinds
SCHEMA = ";\n".join(statement for table in TABLES for statement in table.ddl())
