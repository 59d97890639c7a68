"""An SMTP server's inbox for alert e-mails (aiosmtpd), which wants a login."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

SMTP_USER, SMTP_PASSWORD = "alerts", "s3cret-smtp-pass"


class MailBox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.logins: list[str] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        assert isinstance(envelope.content, bytes)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 OK"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        if password == SMTP_PASSWORD:
            self.logins.append(login)
            return AuthResult(success=True)
        # A careless server that echoes the credentials back in its refusal.
        return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad password {password}")
