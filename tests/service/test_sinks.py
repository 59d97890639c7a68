"""Alert sinks and the dispatcher, against real receivers started here: an HTTP receiver (Starlette
served by uvicorn in a thread) and an SMTP server (aiosmtpd). Retry backoff uses a recording
``sleep``, so no test waits for real time to pass."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from monitoring.alert import Alert, AlertSink
from monitoring.alert_dispatcher import AlertDispatcher, DeliveryResult
from monitoring.alert_sinks import GREEN, ORANGE, RED, DiscordSink, EmailSink, LogSink, SlackSink, WebhookSink
from tests.helpers.mail import SMTP_PASSWORD, SMTP_USER, MailBox
from tests.helpers.receivers import HttpReceiver
from tests.helpers.records import make_alert


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5.0) as client:
        yield client


class Recorder:
    """``on_delivery`` results and ``sleep`` calls, so tests see retries without waiting."""

    def __init__(self) -> None:
        self.results: list[DeliveryResult] = []
        self.sleeps: list[float] = []

    def __call__(self, result: DeliveryResult) -> None:
        self.results.append(result)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)

    def for_sink(self, name: str) -> list[DeliveryResult]:
        return [r for r in self.results if r.sink == name]


async def deliver(sinks: list[AlertSink], *alerts: Alert, attempts: int = 5) -> Recorder:
    recorder = Recorder()
    dispatcher = AlertDispatcher(sinks, attempts=attempts, on_delivery=recorder, sleep=recorder.sleep)
    for alert in alerts:
        dispatcher.submit(alert)
    await dispatcher.close()
    return recorder


async def test_webhook_receives_the_alert_json(receiver: HttpReceiver, http: httpx.AsyncClient) -> None:
    alert = make_alert()
    recorder = await deliver([WebhookSink(f"{receiver.url}/hook", http)], alert)

    [request] = receiver.on("/hook")
    assert request.headers["content-type"] == "application/json"
    assert request.body == alert.as_dict()
    assert request.body["rule"] == "slow_response"
    assert request.body["state"] == "firing"
    assert request.body["key"] == "slow_response:gpt-4o-mini"
    assert request.body["message"] == alert.message
    assert request.body["labels"] == {"model": "gpt-4o-mini", "route": "/chat"}
    assert [(r.sink, r.ok, r.attempts, r.error) for r in recorder.results] == [("webhook", True, 1, None)]


async def test_slack_payload_has_text_and_mrkdwn_section(receiver: HttpReceiver, http: httpx.AsyncClient) -> None:
    alert = make_alert(severity="critical")
    await deliver([SlackSink(f"{receiver.url}/slack", http)], alert)

    [request] = receiver.on("/slack")
    assert request.body["text"] == alert.title
    [block] = request.body["blocks"]
    assert block["type"] == "section"
    assert block["text"]["type"] == "mrkdwn"
    for part in ("slow_response", "firing", "critical", alert.message, "model=gpt-4o-mini", "route=/chat"):
        assert part in block["text"]["text"]


async def test_discord_payload_has_content_and_embed_coloured_by_state(
    receiver: HttpReceiver, http: httpx.AsyncClient
) -> None:
    critical, warning, resolved = make_alert(severity="critical"), make_alert(), make_alert(state="resolved")
    await deliver([DiscordSink(f"{receiver.url}/discord", http)], critical, warning, resolved)

    first, second, third = receiver.on("/discord")
    assert first.body["content"] == critical.title
    [embed] = first.body["embeds"]
    assert embed["description"] == critical.message
    assert "slow_response" in embed["title"]
    assert embed["timestamp"] == critical.at.isoformat()
    assert {"name": "model", "value": "gpt-4o-mini", "inline": True} in embed["fields"]
    assert {"name": "route", "value": "/chat", "inline": True} in embed["fields"]
    assert third.body["content"] == resolved.title
    colors = [r.body["embeds"][0]["color"] for r in (first, second, third)]
    assert colors == [RED, ORANGE, GREEN] and len(set(colors)) == 3


async def test_email_arrives_with_title_as_subject_and_message_in_body(mailbox: MailBox, smtp_server: Any) -> None:
    alert = make_alert()
    sink = EmailSink("127.0.0.1", smtp_server[1], "llm@example.test", ["oncall@example.test", "ops@example.test"])
    recorder = await deliver([sink], alert)

    assert [(r.sink, r.ok) for r in recorder.results] == [("email", True)]
    [message] = mailbox.messages
    assert message["Subject"] == alert.title
    assert message["To"] == "oncall@example.test, ops@example.test"
    body = message.get_content()
    assert alert.message in body
    assert "slow_response:gpt-4o-mini" in body
    assert "model: gpt-4o-mini" in body


async def test_email_logs_in_and_a_refusal_never_carries_the_password(
    mailbox: MailBox, smtp_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    def sink(password: str) -> EmailSink:
        return EmailSink(
            "127.0.0.1", smtp_server[1], "llm@example.test", ["a@example.test"], username=SMTP_USER, password=password
        )

    good, bad = sink(SMTP_PASSWORD), sink("wrong-pw-42")
    bad.name = "email-bad"
    with caplog.at_level(logging.DEBUG):
        recorder = await deliver([good, bad], make_alert(), attempts=2)

    assert mailbox.logins == [SMTP_USER]
    assert len(mailbox.messages) == 1
    [failed] = recorder.for_sink("email-bad")
    assert not failed.ok and failed.attempts == 2
    assert failed.error is not None and "wrong-pw-42" not in failed.error
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("llm_server")]
    assert ours and not any("wrong-pw-42" in m for m in ours)


async def test_receiver_failing_twice_then_succeeding_is_retried_with_growing_backoff(
    receiver: HttpReceiver, http: httpx.AsyncClient
) -> None:
    receiver.fail_first["/hook"] = (2, 500)
    recorder = await deliver([WebhookSink(f"{receiver.url}/hook", http)], make_alert())

    assert [r.status for r in receiver.on("/hook")] == [500, 500, 200]
    [result] = recorder.results
    assert result.ok and result.attempts == 3 and result.error is None
    assert len(recorder.sleeps) == 2
    assert 0.5 <= recorder.sleeps[0] < recorder.sleeps[1] <= 30.0


async def test_receiver_always_failing_gives_up_and_other_sinks_still_deliver(
    receiver: HttpReceiver, http: httpx.AsyncClient
) -> None:
    receiver.fail_first["/slack"] = (100, 503)
    sinks: list[AlertSink] = [SlackSink(f"{receiver.url}/slack", http), WebhookSink(f"{receiver.url}/hook", http)]
    recorder = await deliver(sinks, make_alert(), attempts=4)

    [failed] = recorder.for_sink("slack")
    assert not failed.ok and failed.attempts == 4
    assert failed.error == "HTTP 503 Service Unavailable"  # short, and without the URL: it is a credential
    assert len(receiver.on("/slack")) == 4
    [delivered] = recorder.for_sink("webhook")
    assert delivered.ok and delivered.attempts == 1
    assert len(receiver.on("/hook")) == 1


async def test_hanging_receiver_blocks_neither_submit_nor_the_other_sink(receiver: HttpReceiver) -> None:
    receiver.hang.add("/slow")
    recorder = Recorder()
    async with httpx.AsyncClient(timeout=0.2) as http:
        # The hanging sink comes first: if sinks were delivered one after another, its two timed-out
        # attempts would finish before the webhook is even tried.
        sinks: list[AlertSink] = [DiscordSink(f"{receiver.url}/slow", http), WebhookSink(f"{receiver.url}/hook", http)]
        dispatcher = AlertDispatcher(sinks, attempts=2, on_delivery=recorder, sleep=recorder.sleep)
        started = time.perf_counter()
        dispatcher.submit(make_alert())
        assert time.perf_counter() - started < 0.05
        assert receiver.on("/slow") == []  # submit only queued; delivery happens in the background
        await dispatcher.close()

    assert [(r.sink, r.ok) for r in recorder.results] == [("webhook", True), ("discord", False)]
    assert recorder.results[1].attempts == 2
    assert "Timeout" in (recorder.results[1].error or "")
    assert len(receiver.on("/hook")) == 1


class BlockedSink:
    name = "blocked"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.seen: list[str] = []

    async def send(self, alert: Alert) -> None:
        self.started.set()
        await self.release.wait()
        self.seen.append(alert.id)


async def test_full_queue_drops_extra_alerts_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    sink = BlockedSink()
    dispatcher = AlertDispatcher([sink], queue_size=2)
    alerts = [make_alert(n=n) for n in range(5)]
    dispatcher.submit(alerts[0])
    await sink.started.wait()  # the worker now holds alert 0 and is blocked in the sink
    with caplog.at_level(logging.WARNING, logger="llm_server.alerts.dispatch"):
        for alert in alerts[1:]:
            dispatcher.submit(alert)  # 1 and 2 fill the queue; 3 and 4 must be dropped, not raise
    sink.release.set()
    await dispatcher.close()

    assert sink.seen == [a.id for a in alerts[:3]]
    assert caplog.text.count("queue is full") == 2


def test_submit_outside_an_event_loop_drops_without_raising(caplog: pytest.LogCaptureFixture) -> None:
    dispatcher = AlertDispatcher([LogSink()])
    with caplog.at_level(logging.WARNING, logger="llm_server.alerts.dispatch"):
        dispatcher.submit(make_alert())
    assert "outside a running event loop" in caplog.text


async def test_failing_on_delivery_callback_is_logged_not_propagated(
    receiver: HttpReceiver, http: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    def explode(result: DeliveryResult) -> None:
        raise RuntimeError("callback broke")

    dispatcher = AlertDispatcher([WebhookSink(f"{receiver.url}/hook", http)], on_delivery=explode)
    with caplog.at_level(logging.ERROR, logger="llm_server.alerts.dispatch"):
        dispatcher.submit(make_alert(n=1))
        dispatcher.submit(make_alert(n=2))
        await dispatcher.close()

    assert len(receiver.on("/hook")) == 2  # the worker survived the first callback failure
    assert caplog.text.count("on_delivery callback failed") == 2


async def test_log_sink_levels_follow_state_and_severity(caplog: pytest.LogCaptureFixture) -> None:
    alerts = [make_alert(severity="warning"), make_alert(severity="critical"), make_alert(state="resolved")]
    with caplog.at_level(logging.DEBUG, logger="llm_server.alerts"):
        await deliver([LogSink()], *alerts)

    records = [r for r in caplog.records if r.name == "llm_server.alerts"]
    assert [(r.levelno, r.getMessage()) for r in records] == [
        (logging.WARNING, alerts[0].title),
        (logging.ERROR, alerts[1].title),
        (logging.INFO, alerts[2].title),
    ]
