"""The secrets this process holds, and the last line that keeps them out of what it writes.

Secrets stay out first where text is made: settings hold them as ``SecretStr``, the keys file is
read into hashes, provider errors reach clients, records and alerts only through
``errors.describe``, alert delivery errors lose their URLs, the Redis URL is shown without its
password. This module is what ``describe`` and the log share, and the defence behind them:

- ``withhold(*values)`` adds secrets this process knows: provider keys, the Redis URL and its
  password, webhook URLs and their paths, the SMTP password, keys written in clear in the keys file;
- ``redact(text)`` replaces each of them, and anything shaped like a masked key
  (``gsk_Vq8Z****eU5a``, as providers' error messages show a refused key), with ``[redacted]``;
- ``redact_keys(text)`` also replaces OpenAI- and Google-shaped keys this process never held, for
  provider error text (``errors.describe``);
- ``install_log_redaction(values)`` withholds ``values`` and passes every log record through
  ``redact``, because libraries write lines this project does not compose: httpx logs each
  request's URL at INFO (a webhook's token with it), aiosqlite logs query arguments at DEBUG,
  tracebacks carry exception text.

A value shorter than ``MIN_LENGTH`` is not withheld: replacing a short common string everywhere
would garble the log, and protects nothing so weak anyway.

State: the known secrets, one module-level pattern written at start-up (settings, keys file) and
read by every log record and description, in any thread. It is replaced whole, never changed in
place, so a reader sees the old pattern or the new one.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

REDACTED = "[redacted]"
MIN_LENGTH = 8

# Four or more asterisks inside a key-like token: how providers show a key they refused.
_MASKED = re.compile(r"[A-Za-z0-9_\-]{2,}\*{4,}[A-Za-z0-9_\-]*")
# Keys of the shapes OpenAI and Google issue, and ``key=`` query parameters: provider error text
# may quote a key this process does not hold (an OpenAI-compatible server's key can look like
# anything, so the held ones go through ``withhold``).
_KEYLIKE = re.compile(r"(sk-[A-Za-z0-9_\-*]{6,}|AIza[0-9A-Za-z_\-]{10,}|key=[^&\s]+)")
_known: frozenset[str] = frozenset()
_pattern: re.Pattern[str] | None = None
_installed = False
_tracebacks = logging.Formatter()


def withhold(*values: str | None) -> None:
    """Never write these again: ``redact`` and every log record replace them from now on."""
    global _known, _pattern
    added = {value for value in values if value and len(value) >= MIN_LENGTH} - _known
    if not added:
        return
    known = _known | added
    # Longest first: a webhook URL goes whole, not just the token path inside it.
    pattern = re.compile("|".join(re.escape(value) for value in sorted(known, key=len, reverse=True)))
    _known, _pattern = known, pattern


def redact(text: str) -> str:
    """``text`` without any withheld secret or masked key."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)
    return _MASKED.sub(REDACTED, text) if "****" in text else text


def redact_keys(text: str) -> str:
    """``redact``, and every key-shaped token too: for provider error text."""
    return redact(_KEYLIKE.sub(REDACTED, text))


def install_log_redaction(values: Iterable[str] = ()) -> None:
    """Withhold ``values`` and redact every log record of this process (idempotent)."""
    global _installed
    withhold(*values)
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacted_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        _redact_record(record)
        return record

    logging.setLogRecordFactory(redacted_record)


def _redact_record(record: logging.LogRecord) -> None:
    """Redact in place, keeping ``args`` where it can: some formatters (uvicorn's access log)
    unpack them."""
    if isinstance(record.msg, str):
        record.msg = redact(record.msg)
    if isinstance(record.args, tuple):
        record.args = tuple(_clean(arg) for arg in record.args)
    elif isinstance(record.args, Mapping):
        record.args = {key: _clean(value) for key, value in record.args.items()}
    try:
        message = record.getMessage()
    except Exception:
        message = None  # a broken format string: logging reports that itself
    if message is not None and redact(message) != message:  # a secret only the objects' repr showed
        record.msg, record.args = redact(message), ()
    if record.exc_info and not record.exc_text:
        # Formatted now so the handler's formatter uses this text instead of formatting it again.
        record.exc_text = redact(_tracebacks.formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = redact(record.stack_info)


def _clean(arg: object) -> object:
    if arg is None or isinstance(arg, (bool, int, float)):
        return arg
    try:
        text = arg if isinstance(arg, str) else str(arg)
    except Exception:
        return arg
    cleaned = redact(text)
    return arg if cleaned == text else cleaned
