"""What a client may attach to a request (``tags`` and ``metadata``), checked before anything
stores it: every call record keeps it, so one request must not be able to bloat the store, break
the readers with nesting they cannot serialize, or hide text that is not Unicode.

- ``metadata`` is an object nested at most ``MAX_DEPTH`` levels; ``tags`` a list of strings;
- together they take at most ``max_bytes`` as JSON in UTF-8 (``LLM_SERVER_MAX_CLIENT_METADATA_BYTES``);
- every string, keys included, is valid Unicode (a lone surrogate such as ``"\\udc80"`` cannot be
  written as UTF-8, and a reader would fail on it later).

Each problem is a 422 naming the limit. The checked metadata is then kept apart from the server's
own (see ``api.config_guard``): a client cannot set what the server decides with.
"""

from __future__ import annotations

import json
from typing import Any

from errors import RequestError

MAX_DEPTH = 8  # {"a": {"b": ...}}: deeper than any label needs, far from any parser's limit
MAX_TAGS = 32
MAX_TAG_CHARS = 128


def _depth_over(value: Any, limit: int) -> bool:
    """Whether ``value`` nests containers deeper than ``limit`` (iterative: no recursion to blow)."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return False


def _not_unicode(value: Any) -> str | None:
    """The first string in ``value`` (keys too) that is not valid Unicode, shown escaped."""
    stack = [value]
    while stack:
        item = stack.pop()
        strings: list[Any] = []
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = list(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        for text in strings:
            if isinstance(text, str):
                try:
                    text.encode("utf-8")
                except UnicodeEncodeError:
                    return json.dumps(text)[:80]
    return None


def check_client_metadata(tags: Any, metadata: Any, *, max_bytes: int) -> None:
    """Raise ``RequestError`` (422) unless ``tags`` and ``metadata`` are fit to store."""
    if metadata is not None and not isinstance(metadata, dict):
        raise RequestError("config.metadata must be an object of names to values")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(tag, str) for tag in tags):
            raise RequestError("config.tags must be a list of strings")
        if len(tags) > MAX_TAGS or any(len(tag) > MAX_TAG_CHARS for tag in tags):
            raise RequestError(
                f"config.tags may hold {MAX_TAGS} tags of up to {MAX_TAG_CHARS} characters each",
                details={"limit_tags": MAX_TAGS, "limit_tag_chars": MAX_TAG_CHARS},
            )
    if _depth_over(metadata, MAX_DEPTH):
        raise RequestError(
            f"config.metadata is nested deeper than {MAX_DEPTH} levels; flatten it",
            details={"limit_depth": MAX_DEPTH},
        )
    bad = _not_unicode([tags, metadata])
    if bad is not None:
        raise RequestError(
            f"config.tags and config.metadata must be valid Unicode; {bad} holds a lone surrogate",
        )
    size = len(json.dumps([tags, metadata], ensure_ascii=False, default=str).encode("utf-8"))
    if size > max_bytes:
        raise RequestError(
            f"config.tags and config.metadata take {size} bytes as JSON; the limit is {max_bytes} "
            "(LLM_SERVER_MAX_CLIENT_METADATA_BYTES): send less",
            details={"limit_bytes": max_bytes},
        )
