"""``Outcome``: how one LLM call ended. Its values are what records, JSON and filters store."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from vocabulary.causes import Cause

OutcomeName = Literal["ok", "error", "cancelled", "cached"]  # the same values, for FastAPI query parameters


class Outcome(StrEnum):
    OK = "ok"  # the model answered
    ERROR = "error"  # the call failed; its record carries the cause
    CANCELLED = "cancelled"  # the client went away: nobody failed
    CACHED = "cached"  # answered from the response cache: no model was called

    @classmethod
    def of_failure(cls, cause: Cause) -> Outcome:
        """How a call that raised with ``cause`` ended: cancelled when the client left."""
        return cls.CANCELLED if cause is Cause.CANCELLED else cls.ERROR
