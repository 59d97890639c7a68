"""``Cause``: why a model attempt failed, and what each cause means, decided here once:

- ``is_callers_fault``: the caller's own input failed; the ladder raises it at once (422)
  instead of falling back, and nothing is learned about the model;
- ``counts_against_breaker``: the endpoint is unwell, so the failure counts against its
  circuit breaker (the others say nothing about its health and release the breaker's ticket);
- ``is_transient``: worth retrying on the same rung, with backoff, before falling back;
- ``is_incident``: someone should hear of it (the ``llm_error`` and ``error_rate`` alerts).

Causes are short stable strings because they end up in records, metrics and JSON bodies.
Reading a cause from an exception is ``errors.causes.classify``.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class Cause(StrEnum):
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    SERVER_ERROR = "server_error"
    CONNECTION = "connection"
    AUTH = "auth"
    BAD_REQUEST = "bad_request"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    TRUNCATED_STREAM = "truncated_stream"
    STALLED_STREAM = "stalled_stream"
    MALFORMED_STREAM = "malformed_stream"  # stream chunks that are not JSON: more than we skip, or any the SDK cannot
    QUALITY_REJECTED = "quality_rejected"
    BREAKER_OPEN = "breaker_open"
    NOT_CONFIGURED = "not_configured"
    OVERLOADED = "overloaded"
    ENGINE_CRASHED = "engine_crashed"  # the local engine's process died or is restarting
    CANCELLED = "cancelled"  # the client went away; nobody failed
    UNSUPPORTED = "unsupported"  # the rung's model cannot do what the request needs (tools, structured output)
    BUDGET_EXHAUSTED = "budget_exhausted"  # the caller's money budget cannot cover the call at this model's price
    UNKNOWN = "unknown"

    @property
    def is_callers_fault(self) -> bool:
        return _MEANINGS[self].callers_fault

    @property
    def counts_against_breaker(self) -> bool:
        return _MEANINGS[self].unhealthy

    @property
    def is_transient(self) -> bool:
        return _MEANINGS[self].transient

    @property
    def is_incident(self) -> bool:
        return _MEANINGS[self].incident


class _Meaning(NamedTuple):
    callers_fault: bool
    unhealthy: bool
    transient: bool
    incident: bool


# One row per cause. Not incidents: a caller's bad input, a provider with no key, a client that left,
# a model asked for what it cannot do.
_MEANINGS: dict[Cause, _Meaning] = {
    #                                callers  unhealthy transient incident
    Cause.RATE_LIMITED: _Meaning(False, True, True, True),
    Cause.TIMEOUT: _Meaning(False, True, False, True),
    Cause.SERVER_ERROR: _Meaning(False, True, True, True),
    Cause.CONNECTION: _Meaning(False, True, True, True),
    Cause.AUTH: _Meaning(False, True, False, True),
    Cause.BAD_REQUEST: _Meaning(True, False, False, False),
    Cause.CONTEXT_LENGTH: _Meaning(False, False, False, True),
    Cause.CONTENT_FILTER: _Meaning(False, False, False, True),
    Cause.TRUNCATED_STREAM: _Meaning(False, True, False, True),
    Cause.STALLED_STREAM: _Meaning(False, True, False, True),
    Cause.MALFORMED_STREAM: _Meaning(False, True, False, True),
    Cause.QUALITY_REJECTED: _Meaning(False, False, False, True),
    Cause.BREAKER_OPEN: _Meaning(False, False, False, True),
    Cause.NOT_CONFIGURED: _Meaning(False, False, False, False),
    Cause.OVERLOADED: _Meaning(False, True, False, True),
    Cause.ENGINE_CRASHED: _Meaning(False, False, False, True),
    Cause.CANCELLED: _Meaning(False, False, False, False),
    Cause.UNSUPPORTED: _Meaning(False, False, False, False),
    Cause.BUDGET_EXHAUSTED: _Meaning(False, False, False, False),
    Cause.UNKNOWN: _Meaning(False, True, False, True),
}


def cause_of(value: str | None) -> Cause | None:
    """The ``Cause`` a stored string names (records keep plain strings); None for none or an
    unknown one, e.g. from an older server."""
    if value is None:
        return None
    try:
        return Cause(value)
    except ValueError:
        return None
