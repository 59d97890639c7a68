"""The server's exceptions, in one tree.

    ServerError
    ├── ConfigurationError      the operator's to fix: bad settings, missing model file
    ├── RequestError            the caller's to fix; carries an HTTP status (422 by default)
    │   ├── Unauthenticated     401: no API key, or one the server does not know
    │   ├── ModelNotAllowed     403: a model above the caller's tier; names the allowed ones
    │   ├── AdminOnly           403: an operations route for admin keys only; says how to make one
    │   ├── ContentRefused      422: a provider refused the request on content policy; not retried elsewhere
    │   ├── ModelNotFound       404: a model name the OpenAI-compatible door does not offer; names those it does
    │   ├── TooLarge            413: body, prompt or batch over its limit; names the limit
    │   ├── UnsupportedMediaType 415: a body that is not sent as JSON
    │   ├── TagNotAllowed       403: a budget tag the caller's key may not charge; names those it may
│   ├── RateLimited         429: the caller's requests or tokens per minute are used up
│   └── BudgetExhausted     429: a money budget cannot cover the call; names it, what was spent, when it resets
    ├── ProviderError           one model attempt failed; carries the model and a Cause
    │   ├── NotConfigured       no key for that provider: fails at once, the ladder moves on
    │   ├── ContentBlocked      our keyword filter refused an answer: the next model is asked
    │   ├── Overloaded          the local model's queue is full or the wait ran out
    │   └── QualityRejected     the answer failed a validator (e.g. too short)
    ├── AllRungsFailed          every rung of a ladder failed: 503 with each attempt
    └── StreamInterrupted       a stream failed after text reached the client: an error event

Every message says what happened and, where it can, what to do about it. None carries a key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from errors.causes import Cause, classify, describe, retry_after_of

__all__ = [
    "AdminOnly",
    "AllRungsFailed",
    "Attempt",
    "BudgetExhausted",
    "Cause",
    "ConfigurationError",
    "ContentBlocked",
    "ContentRefused",
    "ModelNotAllowed",
    "ModelNotFound",
    "NotConfigured",
    "Overloaded",
    "ProviderError",
    "QualityRejected",
    "RateLimited",
    "RequestError",
    "ServerError",
    "StreamInterrupted",
    "TagNotAllowed",
    "TooLarge",
    "Unauthenticated",
    "UnsupportedMediaType",
    "classify",
    "describe",
    "retry_after_of",
]


class ServerError(Exception):
    """Base of every error this server raises on purpose."""


class ConfigurationError(ServerError):
    """The server's settings are wrong; the message names the setting to change."""


class RequestError(ServerError):
    """The request is wrong; ``status`` is the HTTP status to answer with, ``code`` the short
    error name in the JSON body."""

    code = "invalid_request"
    default_status = 422

    def __init__(self, message: str, *, status: int | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        self.status = status or self.default_status
        self.details = details or {}


class Unauthenticated(RequestError):
    code = "unauthenticated"
    default_status = 401


class ModelsFileRefused(RequestError):
    """A reload of the models file was refused; the running configuration is kept."""

    code = "models_file_refused"
    default_status = 409


class ModelNotAllowed(RequestError):
    code = "model_not_allowed"
    default_status = 403


class AdminOnly(RequestError):
    code = "admin_only"
    default_status = 403


class ModelNotFound(RequestError):
    code = "model_not_found"
    default_status = 404


class ContentRefused(RequestError):
    code = "content_filter"
    default_status = 422


class TooLarge(RequestError):
    code = "too_large"
    default_status = 413


class UnsupportedMediaType(RequestError):
    code = "unsupported_media_type"
    default_status = 415


class RateLimited(RequestError):
    code = "rate_limited"
    default_status = 429

    def __init__(self, message: str, *, retry_after: float, details: dict[str, Any] | None = None):
        super().__init__(message, details={**(details or {}), "retry_after": max(1, math.ceil(retry_after))})
        self.retry_after = max(1, math.ceil(retry_after))


class BudgetExhausted(RateLimited):
    """A budget in money is spent, or has too little left for the call at its model's price;
    ``retry_after``: when its window resets."""

    code = "budget_exhausted"
    downgrades = False  # the budget serves the request from the cheap alternative instead of refusing it

    def downgrading(self, downgrades: bool) -> BudgetExhausted:
        self.downgrades = downgrades
        return self


class TagNotAllowed(RequestError):
    code = "tag_not_allowed"
    default_status = 403


class ProviderError(ServerError):
    """One attempt at one model failed for a reason on the provider's side."""

    cause: Cause = Cause.UNKNOWN

    def __init__(self, message: str, *, cause: Cause | None = None, retry_after: float | None = None):
        super().__init__(message)
        if cause is not None:
            self.cause = cause
        self.retry_after = retry_after


class NotConfigured(ProviderError):
    cause = Cause.NOT_CONFIGURED


class Overloaded(ProviderError):
    cause = Cause.OVERLOADED


class ContentBlocked(ProviderError):
    """Our own keyword filter (block mode) refused an answer: unlike a provider's content-policy
    refusal, the next model is asked."""

    cause = Cause.CONTENT_FILTER


class QualityRejected(ProviderError):
    cause = Cause.QUALITY_REJECTED


@dataclass(frozen=True)
class Attempt:
    """One rung's try, as reported to the client when every rung failed."""

    rung: int
    alternative: str
    model: str
    provider: str
    cause: Cause
    detail: str
    retry_after: float | None = None
    tries: int = 1  # 0: skipped without a call (breaker open, deadline passed)
    deployment: str | None = None  # which of the alternative's deployments (its endpoint name)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rung": self.rung,
            "tries": self.tries,
            "alternative": self.alternative,
            "deployment": self.deployment,
            "model": self.model,
            "provider": self.provider,
            "cause": self.cause.value,
            "detail": self.detail,
        }


class AllRungsFailed(ServerError):
    """Every rung of a fallback ladder failed; ``attempts`` says how, in order."""

    code = "all_models_failed"

    def __init__(self, ladder: str, attempts: Sequence[Attempt]):
        self.ladder = ladder
        self.attempts = list(attempts)
        causes = ", ".join(f"{a.model}: {a.cause.value}" for a in self.attempts)
        super().__init__(f"every model of the '{ladder}' ladder failed ({causes})")

    def retry_after(self, default: int) -> int:
        """The longest wait any provider asked for, or ``default`` when none did."""
        hints = [a.retry_after for a in self.attempts if a.retry_after]
        return max(1, round(max(hints))) if hints else default


class StreamInterrupted(ServerError):
    """A stream failed after part of the answer reached the client, and no other model could
    continue it (or it may not be continued: tool calls, structured output, a content-policy
    refusal); the client gets an error event saying so instead of a silently partial answer."""

    code = "stream_interrupted"

    def __init__(self, model: str, cause: Cause, detail: str, continuations: Sequence[Attempt] = ()):
        self.model = model
        self.cause = cause
        self.detail = detail
        self.continuations = list(continuations)  # the rungs asked to continue it, and why each failed
        tried = f"; {len(self.continuations)} other model(s) could not continue it" if self.continuations else ""
        super().__init__(f"the answer from {model} broke off ({cause.value}: {detail}){tried}; ask again")
