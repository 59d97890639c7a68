"""Why a model attempt failed, read from the SDKs' real exception types.

``Cause`` itself, and what each cause means for the ladder, breakers, retries and alerts, is
``vocabulary.causes``; it is importable from here as before.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from typing import Any

from errors.secrets import redact_keys
from vocabulary.causes import Cause

__all__ = ["Cause", "classify", "describe", "retry_after_of"]


def _from_status(status: int, text: str) -> Cause:
    text = text.lower()
    if status == 429:
        return Cause.RATE_LIMITED
    if status in (401, 403) or "api key not valid" in text or "api_key_invalid" in text:
        return Cause.AUTH  # Gemini refuses a key with 400 INVALID_ARGUMENT: not the caller's input
    if status == 404:
        # An unknown model or path is the server's setup, not the caller's input.
        return Cause.NOT_CONFIGURED
    if status in (408, 504):
        return Cause.TIMEOUT
    if status >= 500:
        return Cause.SERVER_ERROR
    if ("context" in text and ("length" in text or "window" in text)) or "too many tokens" in text:
        return Cause.CONTEXT_LENGTH
    if "content_filter" in text or "safety" in text:
        return Cause.CONTENT_FILTER
    return Cause.BAD_REQUEST


def classify(exc: BaseException) -> Cause:
    """Map any exception raised by a model call to a Cause."""
    from errors import ProviderError  # local: errors/__init__ imports this module

    if isinstance(exc, ProviderError):
        return exc.cause
    if isinstance(exc, (asyncio.CancelledError, GeneratorExit)):
        return Cause.CANCELLED
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return Cause.TIMEOUT
    if isinstance(exc, json.JSONDecodeError):
        # What the provider sent did not parse (a stream event): the provider's fault, not the
        # caller's, unlike the ValueError below.
        return Cause.MALFORMED_STREAM

    import openai
    from google.genai import errors as genai_errors

    if isinstance(exc, openai.APITimeoutError):
        return Cause.TIMEOUT
    if isinstance(exc, openai.APIConnectionError):
        return Cause.CONNECTION
    if isinstance(exc, openai.ContentFilterFinishReasonError):
        return Cause.CONTENT_FILTER
    if isinstance(exc, openai.LengthFinishReasonError):
        return Cause.CONTEXT_LENGTH
    if isinstance(exc, openai.APIStatusError):
        code = ""
        if isinstance(exc.body, dict):
            code = str(exc.body.get("code") or "")
        return _from_status(exc.status_code, f"{code} {exc.message}")
    if isinstance(exc, openai.APIError):
        return Cause.SERVER_ERROR  # no status: the provider sent an error event mid-stream
    if isinstance(exc, genai_errors.UnknownApiResponseError):
        return Cause.MALFORMED_STREAM  # google-genai's JSONDecodeError: its stream cannot go on
    if isinstance(exc, genai_errors.APIError):
        return _from_status(int(exc.code or 0), f"{exc.status} {exc.message}")
    if exc.__cause__ is not None:
        # langchain-google-genai raises its own errors from the SDK's 4xx (GoogleRateLimitError...).
        return classify(exc.__cause__)

    if isinstance(exc, ValueError) and "not JSON compliant" in str(exc):
        return Cause.BAD_REQUEST  # the SDK could not write the caller's parameters (NaN): nothing was sent
    name = type(exc).__name__
    if "Timeout" in name:
        return Cause.TIMEOUT
    if "Connect" in name or isinstance(exc, ConnectionError):
        return Cause.CONNECTION
    return Cause.UNKNOWN


def _headers_of(exc: BaseException) -> Any:
    response = getattr(exc, "response", None)
    if response is None and exc.__cause__ is not None:
        return _headers_of(exc.__cause__)  # a wrapper raised from the SDK's error (see classify)
    return getattr(response, "headers", None)


def retry_after_of(exc: BaseException, *, now: float | None = None) -> float | None:
    """Seconds the provider asked us to wait (``Retry-After``: seconds or an HTTP date)."""
    explicit = getattr(exc, "retry_after", None)
    if isinstance(explicit, (int, float)):
        return float(explicit)
    headers = _headers_of(exc)
    if headers is None:
        return None
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def describe(exc: BaseException, limit: int = 300) -> str:
    """A short, key-free description of an exception, fit for clients and records."""
    # Provider messages sometimes echo part of a key back; none of it may reach a client or a record.
    text = redact_keys(str(exc) or type(exc).__name__)
    return text if len(text) <= limit else text[: limit - 1] + "…"
