"""Alert destinations: log, generic JSON webhook, Slack, Discord and email, each an ``AlertSink``.

Sinks make one attempt and raise on failure; retrying is the dispatcher's job. HTTP sinks take an
``httpx.AsyncClient`` so the caller owns timeouts and connection pooling. Webhook URLs and the SMTP
password are secrets. This module never logs them and keeps the password out of exception text, but
httpx's own errors name the URL: report ``DeliveryResult.error`` (which strips URLs), not ``str(exc)``.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import smtplib
import ssl
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import httpx

from monitoring.alert import Alert

logger = logging.getLogger("llm_server.alerts")

# Discord embed colours.
RED, ORANGE, GREEN = 0xE74C3C, 0xE67E22, 0x2ECC71


async def _post_json(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> None:
    response = await client.post(url, json=payload)
    response.raise_for_status()


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class LogSink:
    """Writes ``alert.title`` to the ``llm_server.alerts`` logger (WARNING/ERROR when firing, INFO when resolved)."""

    name = "log"

    async def send(self, alert: Alert) -> None:
        if alert.state == "resolved":
            level = logging.INFO
        else:
            level = logging.ERROR if alert.severity == "critical" else logging.WARNING
        logger.log(level, alert.title, extra={"alert": alert.as_dict()})


class WebhookSink:
    """POSTs ``alert.as_dict()`` as a JSON object."""

    name = "webhook"

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self._url = url
        self._client = client

    async def send(self, alert: Alert) -> None:
        await _post_json(self._client, self._url, alert.as_dict())


def _slack_escape(text: str) -> str:
    # Slack treats <...> as links/mentions; these three are the only escapes mrkdwn needs.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackSink:
    """POSTs a Slack incoming-webhook message: ``{"text": title, "blocks": [mrkdwn section]}``."""

    name = "slack"

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self._url = url
        self._client = client

    async def send(self, alert: Alert) -> None:
        labels = ", ".join(f"`{k}={v}`" for k, v in alert.labels.items()) or "none"
        lines = [
            f"*Rule:* {alert.rule}",
            f"*State:* {alert.state}",
            f"*Severity:* {alert.severity}",
            f"*Message:* {alert.message}",
            f"*Labels:* {labels}",
        ]
        text = _clip(_slack_escape("\n".join(lines)), 3000)  # Slack's section text limit
        payload = {
            "text": _slack_escape(alert.title),  # notification / fallback text
            "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": text}}],
        }
        await _post_json(self._client, self._url, payload)


class DiscordSink:
    """POSTs a Discord webhook message: ``{"content": title, "embeds": [one embed with colour and label fields]}``."""

    name = "discord"

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self._url = url
        self._client = client

    async def send(self, alert: Alert) -> None:
        if alert.state == "resolved":
            color = GREEN
        else:
            color = RED if alert.severity == "critical" else ORANGE
        # Clipped to Discord's documented limits, which would otherwise reject the whole message.
        fields = [
            {"name": _clip(k, 256) or "-", "value": _clip(v, 1024) or "-", "inline": True}
            for k, v in list(alert.labels.items())[:25]
        ]
        embed = {
            "title": _clip(f"{alert.rule} {alert.state} ({alert.severity})", 256),
            "description": _clip(alert.message, 4096),
            "color": color,
            "fields": fields,
            "timestamp": alert.at.isoformat(),
        }
        payload = {
            "content": _clip(alert.title, 2000),
            "embeds": [embed],
            "allowed_mentions": {"parse": []},  # an "@everyone" in a message must not ping anyone
        }
        await _post_json(self._client, self._url, payload)


class EmailSink:
    """Sends a plain-text email over SMTP (optional STARTTLS and login); subject is ``alert.title``."""

    name = "email"

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        recipients: Sequence[str],
        *,
        username: str | None = None,
        password: str | None = None,
        starttls: bool = False,
        timeout_s: float = 10,
    ) -> None:
        if not recipients:
            raise ValueError("EmailSink needs at least one recipient")
        self._host, self._port = host, port
        self._sender, self._recipients = sender, list(recipients)
        self._username, self._password = username, password
        self._starttls, self._timeout_s = starttls, timeout_s

    def _message(self, alert: Alert) -> EmailMessage:
        # Folding only past RFC 5322's hard line limit: at 78 the stdlib folds a subject that starts with
        # "[" right after "Subject:", and some readers then show it with a leading space.
        msg = EmailMessage(policy=email.policy.SMTP.clone(max_line_length=998))
        msg["Subject"] = " ".join(alert.title.splitlines())  # a header may not contain line breaks
        msg["From"] = self._sender
        msg["To"] = ", ".join(self._recipients)
        msg["Date"] = formatdate(localtime=False)
        msg["Message-ID"] = make_msgid(domain="llm-server.alerts")
        labels = "".join(f"  {k}: {v}\n" for k, v in alert.labels.items()) or "  (none)\n"
        msg.set_content(
            f"{alert.message}\n\n"
            f"Rule: {alert.rule}\nKey: {alert.key}\nState: {alert.state}\nSeverity: {alert.severity}\n"
            f"At: {alert.at.isoformat()}\nAlert id: {alert.id}\nLabels:\n{labels}"
        )
        return msg

    def _send_blocking(self, msg: EmailMessage) -> None:
        with smtplib.SMTP(self._host, self._port, timeout=self._timeout_s) as smtp:
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
            if self._username is not None:
                smtp.login(self._username, self._password or "")
            smtp.send_message(msg)

    async def send(self, alert: Alert) -> None:
        try:
            await asyncio.to_thread(self._send_blocking, self._message(alert))
        except Exception as exc:
            # A server may echo what it was sent; never let the password travel on in an error.
            if self._password and self._password in str(exc):
                raise smtplib.SMTPException(f"{type(exc).__name__} (server reply withheld)") from None
            raise
