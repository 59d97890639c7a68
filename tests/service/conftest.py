"""Fixtures of the service tier: a real SMTP receiver, in process, for the alert e-mails."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller

from tests.helpers.mail import MailBox
from tests.helpers.processes import free_port


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[MailBox, int]]:
    mailbox = MailBox()
    port = free_port()
    controller = Controller(
        mailbox, hostname="127.0.0.1", port=port, authenticator=mailbox.authenticate, auth_require_tls=False
    )
    controller.start()
    yield mailbox, port
    controller.stop()


@pytest.fixture
def mailbox(smtp_server: tuple[MailBox, int]) -> MailBox:
    smtp_server[0].messages.clear()
    smtp_server[0].logins.clear()
    return smtp_server[0]
