"""``AlertDispatcher``: delivers alerts to every sink in the background, with retries.

State: a bounded queue of submitted alerts, a worker that claims each (replicas deliver an alert
once) and hands it to every sink's own bounded queue, and one worker per sink delivering that
queue in order, so "resolved" never overtakes its "firing" at a destination, and a destination
that hangs or fails holds up only itself, never another sink or a later alert elsewhere. Queues
and workers are created lazily on the first ``submit`` inside a running event loop, and touched
from that loop only (``submit`` is synchronous and never awaits). Each attempt has a deadline of
its own (``attempt_timeout_s``), whatever the sink's client does; an HTTP 4xx other than 408 and
429 is not retried (the same request would be refused again). The bounds keep a broken
destination from growing memory without limit: an alert that finds a queue full is dropped,
logged and reported as a failed delivery.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from monitoring.alert import Alert, AlertSink

logger = logging.getLogger("llm_server.alerts.dispatch")

_URL = re.compile(r"\w+://\S+")
_RETRYABLE_4XX = {408, 429}  # a timeout and "slow down": the same request may pass later


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


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        return not (400 <= status < 500) or status in _RETRYABLE_4XX
    return True


class AlertDispatcher:
    def __init__(
        self,
        sinks: Sequence[AlertSink],
        *,
        attempts: int = 5,
        attempt_timeout_s: float | None = None,
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
        self._attempt_timeout_s = attempt_timeout_s
        self._initial_backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._queue_size = queue_size
        self._on_delivery = on_delivery
        self._sleep = sleep
        self._claim = claim
        self._queue: asyncio.Queue[Alert] | None = None
        self._lanes: list[asyncio.Queue[Alert]] = []  # one per sink, in the order of ``sinks``
        self._workers: list[asyncio.Task[None]] = []
        # Alerts queued or being handed out, plus deliveries queued or running. A delivery's own
        # alert (a failing destination) is counted before that delivery ends, so idle means done.
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def submit(self, alert: Alert) -> None:
        """Queue ``alert`` for delivery. Never blocks and never raises; drops the alert if it cannot queue it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            logger.warning("alert %s (%s) dropped: submit called outside a running event loop", alert.id, alert.rule)
            return
        if not self._workers or any(worker.done() for worker in self._workers):
            self._start(loop)
        assert self._queue is not None
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            logger.warning("alert %s (%s) dropped: delivery queue is full (%d)", alert.id, alert.rule, self._queue_size)
            for sink in self._sinks:
                self._dropped(sink, alert)
            return
        self._began()

    def _began(self) -> None:
        self._busy += 1
        self._idle.clear()

    def _ended(self) -> None:
        self._busy -= 1
        if not self._busy:
            self._idle.set()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        for worker in self._workers:
            worker.cancel()
        if self._queue is None:
            self._queue = asyncio.Queue(maxsize=self._queue_size)
            self._lanes = [asyncio.Queue(maxsize=self._queue_size) for _ in self._sinks]
        self._workers = [loop.create_task(self._hand_out(self._queue), name="alert-dispatcher")]
        self._workers += [
            loop.create_task(self._run_lane(sink, lane), name=f"alert-sink-{sink.name}")
            for sink, lane in zip(self._sinks, self._lanes, strict=True)
        ]

    async def drain(self) -> None:
        """Wait until every alert submitted so far (and any alert its delivery raised) has been
        delivered or given up on."""
        await self._idle.wait()

    async def close(self) -> None:
        await self.drain()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers = []

    async def _hand_out(self, queue: asyncio.Queue[Alert]) -> None:
        while True:
            alert = await queue.get()
            try:
                if self._claim is not None and not await self._claim(alert):
                    self._delivered_elsewhere(alert)
                    continue
                for sink, lane in zip(self._sinks, self._lanes, strict=True):
                    try:
                        lane.put_nowait(alert)
                        self._began()
                    except asyncio.QueueFull:
                        logger.warning("alert %s (%s) to %s dropped: its queue is full (%d)",
                                       alert.id, alert.rule, sink.name, self._queue_size)  # fmt: skip
                        self._dropped(sink, alert)
            except Exception:  # the claim talks to Redis; this only guards the loop
                logger.exception("alert %s: unexpected dispatcher error", alert.id)
            finally:
                self._ended()

    async def _run_lane(self, sink: AlertSink, lane: asyncio.Queue[Alert]) -> None:
        while True:
            alert = await lane.get()
            try:
                await self._deliver(sink, alert)
            except Exception:  # _deliver handles its own failures; this only guards the loop
                logger.exception("alert %s to %s: unexpected dispatcher error", alert.id, sink.name)
            finally:
                self._ended()

    def _delivered_elsewhere(self, alert: Alert) -> None:
        logger.info("alert %s (%s %s) is delivered by another replica", alert.id, alert.key, alert.state)
        for sink in self._sinks:
            self._report(DeliveryResult(alert.id, alert.rule, alert.state, sink.name, True, 0,
                                        "delivered by another replica", datetime.now(UTC)))  # fmt: skip

    def _dropped(self, sink: AlertSink, alert: Alert) -> None:
        error = f"dropped: {self._queue_size} alerts were already waiting"
        self._report(DeliveryResult(alert.id, alert.rule, alert.state, sink.name, False, 0, error, datetime.now(UTC)))

    async def _attempt(self, sink: AlertSink, alert: Alert) -> None:
        if self._attempt_timeout_s is None:
            await sink.send(alert)
            return
        try:
            async with asyncio.timeout(self._attempt_timeout_s):
                await sink.send(alert)
        except TimeoutError:
            raise TimeoutError(f"no answer within {self._attempt_timeout_s:g} s") from None

    async def _deliver(self, sink: AlertSink, alert: Alert) -> None:
        attempts = 0
        error: str | None = None
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._attempts),
            # Jitter no larger than the initial wait keeps each wait longer than the last (until capped).
            wait=wait_exponential_jitter(
                initial=self._initial_backoff_s, max=self._max_backoff_s, jitter=self._initial_backoff_s
            ),
            retry=retry_if_exception(_retryable),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    await self._attempt(sink, alert)
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
