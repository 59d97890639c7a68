"""Retrying what the server says is worth retrying, as long as it says to wait.

- 429 (a rate limit) and 503 (every model of the ladder failed) carry ``Retry-After``: wait that
  long, then try again, a few times at most.
- Every other error is the caller's to fix (422 bad input, 413 too large, 401 no key, 403 model
  above the key's tier) and is raised at once: retrying cannot help.

A 503 on a stream arrives as the stream's error event, which RemoteRunnable raises with the same
status but with only the event's message: no headers, so the wait is the default then.
Copy this file next to your client; it needs only httpx.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import httpx

T = TypeVar("T")
RETRYABLE = frozenset({429, 503})


def retry_after(error: httpx.HTTPStatusError, default_s: float = 5.0) -> float:
    """Seconds the server asked us to wait, from the header or the error body."""
    header = error.response.headers.get("retry-after")
    if header and header.isdigit():
        return float(header)
    try:
        return float(json.loads(error.response.text)["retry_after"])
    except (ValueError, KeyError, TypeError):
        return default_s


def explain(error: httpx.HTTPStatusError) -> str:
    """The server's own message, and for an exhausted ladder each model's cause."""
    try:
        body = json.loads(error.response.text)
    except ValueError:  # a stream's error event: RemoteRunnable keeps only its message
        return f"{error.response.status_code}: {error.response.text[:200]}"
    attempts = "; ".join(f"{a.get('model')}: {a.get('cause')}" for a in body.get("attempts", []))
    return f"{error.response.status_code}: {body.get('message')}" + (f" ({attempts})" if attempts else "")


def _should_wait(error: httpx.HTTPStatusError, attempt: int, attempts: int, max_wait_s: float) -> float | None:
    if error.response.status_code not in RETRYABLE or attempt == attempts:
        return None
    wait = retry_after(error)
    return wait if wait <= max_wait_s else None  # a long wait is the caller's decision, not ours


def with_retries(
    call: Callable[[], T], *, attempts: int = 3, max_wait_s: float = 30.0, sleep: Callable[[float], None] = time.sleep
) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except httpx.HTTPStatusError as error:
            wait = _should_wait(error, attempt, attempts, max_wait_s)
            if wait is None:
                raise
            print(f"retrying in {wait:g}s after {explain(error)}")
            sleep(wait)
    raise AssertionError("unreachable")


async def awith_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 3,
    max_wait_s: float = 30.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except httpx.HTTPStatusError as error:
            wait = _should_wait(error, attempt, attempts, max_wait_s)
            if wait is None:
                raise
            print(f"retrying in {wait:g}s after {explain(error)}")
            await sleep(wait)
    raise AssertionError("unreachable")
