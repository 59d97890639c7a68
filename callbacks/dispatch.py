"""``AlertDispatcher``: delivers alerts to every sink in the background, with retries.

State: one bounded queue of pending alerts and one worker task draining it, both created lazily
on the first ``submit`` inside a running event loop. That is safe because everything touches them
from that one loop (``submit`` is synchronous and never awaits, so it cannot interleave with the
worker mid-operation). The bound keeps a broken destination from growing memory without limit:
when the queue is full new alerts are dropped and a warning is logged. Alerts are delivered one
at a time, in order (so "resolved" never overtakes its "firing"); the sinks of one alert are
delivered concurrently, so a slow or failing sink does not hold up the others for that alert.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from tenacity import AsyncRetrying, stop_after_attempt, wait_exponential_jitter

from callbacks.alert_model import Alert, AlertSink

logger = logging.getLogger("llm_server.alerts.dispatch")

_URL = re.compile(r"\w+://\S+")


@dataclass(frozen=True)
class DeliveryResult:
    alert_id: str
    rule: str
    state: str
    sink: str
    ok: bool
    attempts: int
    error: str | None  # short, without URLs (webhook URLs carry tokens)
    at: datetime


def _describe(exc: BaseException) -> str:
    if isinstance(exc, httpx.HTTPStatusError):
        # Its str() contains the request URL, which for Slack/Discord is a credential.
        return f"HTTP {exc.response.status_code} {exc.response.reason_phrase}".strip()
    text = _URL.sub("<url>", str(exc))
    return f"{type(exc).__name__}: {text}"[:200] if text else type(exc).__name__


class AlertDispatcher:
    def __init__(
        self,
        sinks: Sequence[AlertSink],
        *,
        attempts: int = 5,
        initial_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        queue_size: int = 1000,
        on_delivery: Callable[[DeliveryResult], object] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        claim: Callable[[Alert], Awaitable[bool]] | None = None,
    ) -> None:
        """``claim``, when given, decides whether this process delivers an alert (replicas that
        share state deliver each alert once, from whichever claims it first)."""
        self._sinks = list(sinks)
        self._attempts = attempts
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._queue_size = queue_size
        self._on_delivery = on_delivery
        self._sleep = sleep
        self._claim = claim
        self._queue: asyncio.Queue[Alert] | None = None
        self._worker: asyncio.Task[None] | None = None

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery. Never blocks and never raises; drops the alert if it cannot queue it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.warning("alert %s (%s) dropped: submit called outside a running event loop", alert.id, alert.rule)
            return
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self._queue_size)
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._run(self._queue), name="alert-dispatcher")
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            logger.warning("alert %s (%s) dropped: delivery queue is full (%d)", alert.id, alert.rule, self._queue_size)

    async def drain(self) -> None:
        """Wait until every alert submitted so far has been delivered or given up on."""
        if self._queue is not None:
            await self._queue.join()

    async def close(self) -> None:
        await self.drain()
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None

    async def _run(self, queue: asyncio.Queue[Alert]) -> None:
        while True:
            alert = await queue.get()
            try:
                if self._claim is not None and not await self._claim(alert):
                    self._delivered_elsewhere(alert)
                    continue
                await asyncio.gather(*(self._deliver(sink, alert) for sink in self._sinks))
            except Exception:  # _deliver handles its own failures; this only guards the loop
                logger.exception("alert %s: unexpected dispatcher error", alert.id)
            finally:
                queue.task_done()

    def _delivered_elsewhere(self, alert: Alert) -> None:
        logger.info("alert %s (%s %s) is delivered by another replica", alert.id, alert.key, alert.state)
        for sink in self._sinks:
            self._report(DeliveryResult(alert.id, alert.rule, alert.state, sink.name, True, 0,
                                        "delivered by another replica", datetime.now(UTC)))  # fmt: skip

    async def _deliver(self, sink: AlertSink, alert: Alert) -> None:
        attempts = 0
        error: str | None = None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            # Jitter no larger than the initial wait keeps each wait longer than the last (until capped).
            wait=wait_exponential_jitter(
                initial=self._initial_backoff_s, max=self._max_backoff_s, jitter=self._initial_backoff_s
            ),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    await sink.send(alert)
        except Exception as exc:
            error = _describe(exc)
            logger.warning("alert %s to %s failed after %d attempts: %s", alert.id, sink.name, attempts, error)
        self._report(
            DeliveryResult(
                alert_id=alert.id,
                rule=alert.rule,
                state=alert.state,
                sink=sink.name,
                ok=error is None,
                attempts=attempts,
                error=error,
                at=datetime.now(UTC),
            )
        )

    def _report(self, result: DeliveryResult) -> None:
        if self._on_delivery is not None:
            try:
                self._on_delivery(result)
            except Exception:
                logger.exception("on_delivery callback failed for alert %s to %s", result.alert_id, result.sink)
